"""``mlfem train-classifier``: fine-tune the classifier to explain on a dataset's train split.

Writes OUT/classifier.safetensors + OUT/classifier.json (the best epoch), the resumable
training state and history; see ``docs/training.md``.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from mlfem.cli import UsageError, add_command
from mlfem.cli._output import writable_folder

_SUMMARY = "fine-tune the classifier to explain on a dataset"
_DESCRIPTION = """\
Fine-tune a classifier for a dataset's classes (Adam; BCE-with-logits for multi-label data,
cross-entropy otherwise) on the train split of a splits file, validating on the val split every
epoch. The best epoch is saved as OUT/classifier.safetensors + .json, usable as 'mlfem explain
--model OUT/classifier.safetensors'. Ctrl-C saves the state; --resume continues it.
"""


def add_dataset_arguments(parser: argparse.ArgumentParser, required: bool) -> None:
    """Dataset options shared by train-classifier and train-fusion."""
    group = parser.add_argument_group("dataset")
    group.add_argument("--dataset", required=required, default=None,
                       help="dataset name: salicon, cat2000, mexculture, "
                       "mit1003, osie, folder, synthetic")
    group.add_argument("--root", type=Path, default=None,
                       help="dataset folder (default $MLFEM_DATA/<name>; none for synthetic)")
    group.add_argument("-O", "--dataset-option", action="append", default=[], metavar="KEY=VALUE",
                       help="further open_dataset option, e.g. -O "
                       "sigma=19 -O json_coords=xy (repeatable)")
    group.add_argument("--splits", type=Path, default=None,
                       help="splits file (created on first use; default "
                       "OUT/splits.json or the classifier's)")
    group.add_argument("--split-seed", type=int, default=None,
                       help="seed of a new splits file (default 0)")
    group.add_argument("--split-fractions", type=split_fractions, default=None,
                       metavar="TRAIN,VAL,TEST",
                       help="fractions of a new splits file, e.g. 0.9,0.1,0 (default 0.8,0.1,0.1)")
    synthetic = parser.add_argument_group("synthetic benchmark")
    synthetic.add_argument("--n", type=int, default=None, help="number of synthetic images")
    synthetic.add_argument("--data-seed", type=int, default=None,
                           help="seed of the synthetic images")
    synthetic.add_argument("--mode", choices=("single", "multi"), default=None,
                           help="single- or multi-label")


def split_fractions(text: str) -> tuple[float, float, float]:
    """``--split-fractions TRAIN,VAL,TEST``: three numbers >= 0 summing to 1."""
    try:
        values = tuple(float(part) for part in text.split(","))
    except ValueError:
        values = ()
    if len(values) != 3 or min(values) < 0 or abs(sum(values) - 1.0) > 1e-6:
        raise argparse.ArgumentTypeError(
            f"expected three fractions >= 0 summing to 1, e.g. 0.8,0.1,0.1; got {text!r}"
        )
    return values  # type: ignore[return-value]


def dataset_options(args: argparse.Namespace, dataset: str | None) -> dict[str, Any]:
    """``open_dataset`` options from -O KEY=VALUE and the synthetic shortcuts."""
    options = key_values(args.dataset_option, "-O")
    shortcuts = {"n": args.n, "seed": args.data_seed, "mode": args.mode}
    given = {key: value for key, value in shortcuts.items() if value is not None}
    # The video benchmark has --n and --data-seed too, not --mode (its label is a direction).
    allowed = ("synthetic",) if "mode" in given else ("synthetic", "synthetic-video")
    if given and dataset not in (None, *allowed):
        flags = ", ".join("--data-seed" if k == "seed" else f"--{k}" for k in given)
        also = "" if len(allowed) == 1 else " (and synthetic-video)"
        raise UsageError(f"{flags} apply to --dataset synthetic only{also}")
    options.update(given)
    return options


def key_values(items: list[str], flag: str) -> dict[str, Any]:
    """``KEY=VALUE`` options (the value read as JSON, else kept as a string)."""
    options: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise UsageError(f"{flag} expects KEY=VALUE, got {item!r}")
        try:
            options[key] = json.loads(value)
        except ValueError:
            options[key] = value  # a plain string such as xy
    return options


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``train-classifier`` sub-command."""
    parser = add_command(subparsers, "train-classifier", _SUMMARY, _DESCRIPTION)
    add_dataset_arguments(parser, required=True)
    model = parser.add_argument_group("model and training")
    model.add_argument("--model", default="small-cnn",
                       help="small-cnn (fast on CPU), small-cnn3d (clips of a video "
                       "dataset, e.g. synthetic-video), a torchvision classifier "
                       "name (resnet50), timm:<name>, or efficientnet_lite0 "
                       "(ImageNet weights installed with mlfem)")
    model.add_argument("-M", "--model-option", action="append", default=[], metavar="KEY=VALUE",
                       help="keyword argument of a timm:<name> architecture built from "
                       "scratch, e.g. -M patch_size=8 -M depth=4 (repeatable)")
    model.add_argument("--weights", default=None,
                       help="starting weights: imagenet (installed for "
                       "efficientnet_lite0, downloaded otherwise) or a "
                       "local state_dict of the original architecture")
    add_loop_arguments(model, epochs=10, epochs_help="epochs (default 10)")
    model.add_argument("--weight-decay", type=float, default=0.0,
                       help="Adam weight decay (default 0)")
    model.add_argument("--image-size", type=int, default=None,
                       help="model input side (default 224; 128 for "
                       "small-cnn, 64 for small-cnn3d); synthetic images and clips are made at it")
    model.add_argument("--augment", choices=("standard", "crop", "none"), default="standard",
                       help="standard: crop+flip+colour jitter; crop: no flip; none "
                       "(clips: standard is the flip alone, crop nothing)")
    model.add_argument("--seed", type=int, default=0, help="training seed (default 0)")
    add_run_arguments(parser)
    parser.set_defaults(func=run_command)


def add_loop_arguments(group: argparse._ArgumentGroup, epochs: int, epochs_help: str) -> None:
    """--epochs, --batch-size and --lr (Adam), whose batch and rate defaults both trainers share."""
    group.add_argument("--epochs", type=int, default=epochs, help=epochs_help)
    group.add_argument("--batch-size", type=int, default=32, help="batch size (default 32)")
    group.add_argument("--lr", type=float, default=1e-3, help="Adam learning rate (default 1e-3)")


def add_run_arguments(
    parser: argparse.ArgumentParser,
    more: Callable[[argparse._ArgumentGroup], None] | None = None,
) -> None:
    """The "run" options shared by train-classifier and train-fusion: --out, then what
    ``more`` adds to the group, then --resume, --num-workers, --device and --quiet."""
    run = parser.add_argument_group("run")
    run.add_argument("--out", type=Path, required=True, help="output folder")
    if more is not None:
        more(run)
    run.add_argument("--resume", action="store_true", help="continue the run saved in OUT")
    run.add_argument("--num-workers", type=int, default=0,
                     help="data loading processes (default 0)")
    run.add_argument("--device", default=None,
                     help="cpu, cuda, cuda:1... (default: cuda if available)")
    run.add_argument("--quiet", action="store_true", help="no progress bars")


Result = TypeVar("Result")
Config = TypeVar("Config")


def config_from_args(
    config_class: type[Config], args: argparse.Namespace, **values: Any
) -> Config:
    """A trainer's config from the options named after its fields, and ``values`` on top.

    An option left unset (None) is not passed, so that the config's own default applies: both
    trainers' options are named after their config's fields for this reason.
    """
    from dataclasses import fields

    given = {f.name: getattr(args, f.name, None) for f in fields(config_class)}
    given = {name: value for name, value in given.items() if value is not None}
    return config_class(**{**given, **values})


def run_training(
    command: str, train: Callable[[], Result], errors: tuple[type[Exception], ...] = ()
) -> Result | int:
    """Call ``train()`` (which builds the config and trains) as a CLI command does.

    Returns its result, or exit code 130 after a Ctrl-C (the state is saved; the message
    says how to resume). Bad settings, a used --out without --resume, unreadable data or
    checkpoints, and ``errors`` become :class:`UsageError` (exit code 2, no traceback).
    """
    from mlfem.datasets import LayoutError
    from mlfem.models.checkpoint import CheckpointError
    from mlfem.training import TrainingInterrupted

    from mlfem.distributed import current_world

    try:
        result = train()
    except TrainingInterrupted as stopped:
        print(f"mlfem {command}: {stopped}", file=sys.stderr)
        return 130
    except (ValueError, FileExistsError, LayoutError, CheckpointError, *errors) as error:
        raise UsageError(str(error)) from error
    return result if current_world().main else 0  # under torchrun, rank 0 prints the summary


def run_command(args: argparse.Namespace) -> int:
    from mlfem.training import ClassifierConfig, ClassifierRun, train_classifier

    options = dataset_options(args, args.dataset)
    model_options = key_values(args.model_option, "-M")
    image_size = args.image_size or {"small-cnn": 128, "small-cnn3d": 64}.get(args.model, 224)

    def train() -> ClassifierRun:
        config = config_from_args(
            ClassifierConfig, args, dataset_options=options, image_size=image_size,
            model_options=model_options,
        )
        writable_folder(args.out, "--out")  # before the data are read
        return train_classifier(config, progress=not args.quiet)

    result = run_training("train-classifier", train)
    if isinstance(result, int):
        return result
    metrics = ", ".join(f"{k} {v:.4f}" for k, v in result.best_metrics.items() if k != "epoch")
    print(f"best epoch {result.best_epoch}: {metrics}")
    print(f"classifier: {result.checkpoint}")
    print(f"explain with: mlfem explain --model {result.checkpoint} IMAGES --out DIR")
    return 0
