"""``mlfem train-fusion``: train the NET fusion of a model's per-layer FEM maps on GFDMs.

Writes OUT/net.safetensors + OUT/net.json, the map caches, the resumable training state
and history; see ``docs/training.md``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from mlfem.cli import UsageError, add_command
from mlfem.cli._output import writable_folder
from mlfem.cli.train_classifier import (
    add_dataset_arguments,
    add_loop_arguments,
    add_run_arguments,
    config_from_args,
    dataset_options,
    run_training,
)

_SUMMARY = "train the learned NET fusion of MLFEM on human gaze"
_DESCRIPTION = """\
Train the paper's NET fusion: a light CNN mapping the stacked per-layer FEM maps of a model to
the human GFDM (Adam, MSE), on the train split, with early stopping on the val split. The model
is a train-classifier checkpoint (--classifier; the dataset and splits default to those it was
trained with) or any model mlfem explain takes (--model and --weights; then name the dataset,
which needs no class labels, e.g. --dataset osie --root DIR). The maps are computed once and
cached on disk. Use the result as 'mlfem explain --model MODEL --fusion
net:OUT/net.safetensors'; it refuses other models.
"""


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``train-fusion`` sub-command."""
    parser = add_command(subparsers, "train-fusion", _SUMMARY, _DESCRIPTION)
    source = parser.add_argument_group("the model whose FEM maps the NET fuses (one of)")
    source.add_argument("--classifier", type=Path, default=None,
                        help="classifier checkpoint from train-classifier (.safetensors)")
    source.add_argument("--model", default=None,
                        help="or a model as for mlfem explain: efficientnet_lite0, a torchvision "
                        "name, timm:<name>, a .pt2/TorchScript file, package.module:factory")
    source.add_argument("--weights", default=None,
                        help="weights for --model: imagenet or a local state_dict")
    add_dataset_arguments(parser, required=False)
    net = parser.add_argument_group("maps and NET")
    net.add_argument("--layers", default="auto",
                     help="'auto', 'auto-rectified' (outputs clamped at 0 before FEM), "
                     "'auto-mlp'/'auto-mlp-rectified' (a transformer's MLP activations) "
                     "or comma-separated module names; the NET is tied to them")
    net.add_argument("--k", type=float, default=2.0,
                     help="FEM threshold in standard deviations (default 2)")
    net.add_argument("--resolution", type=int, default=64,
                     help="side of the cached maps and of the NET "
                     "input, a multiple of 4 (default 64)")
    add_loop_arguments(net, epochs=50, epochs_help="maximum epochs (default 50)")
    net.add_argument("--patience", type=int, default=8,
                     help="stop after this many epochs without a lower val MSE (default 8)")
    net.add_argument("--seed", type=int, default=0, help="training seed (default 0)")
    add_run_arguments(parser, _add_cache_arguments)
    parser.set_defaults(func=run_command)


def _add_cache_arguments(run: argparse._ArgumentGroup) -> None:
    run.add_argument("--cache", type=Path, default=None,
                     help="map cache folder (default OUT/cache)")
    run.add_argument("--map-batch-size", type=int, default=16,
                     help="images per forward pass for the maps")


def run_command(args: argparse.Namespace) -> int:
    from mlfem.training import CacheMismatchError, FusionConfig, FusionRun, train_fusion

    options = dataset_options(args, args.dataset)

    def train() -> FusionRun:
        # FusionConfig checks --classifier/--model (exactly one) and --weights first.
        config = config_from_args(FusionConfig, args, dataset_options=options or None)
        if args.classifier is not None and not args.classifier.is_file():
            raise UsageError(f"--classifier: file not found: {args.classifier}")
        if args.model is not None and args.dataset is None:
            raise UsageError(
                "--dataset: with --model, name the dataset to train on (e.g. --dataset osie "
                "--root DIR); it needs gaze data, not class labels"
            )
        writable_folder(args.out, "--out")  # before the data are read
        return train_fusion(config, progress=not args.quiet)

    result = run_training("train-fusion", train, (CacheMismatchError,))
    if isinstance(result, int):
        return result
    metrics = ", ".join(f"{k} {v:.5g}" for k, v in result.best_metrics.items() if k != "epoch")
    print(f"best epoch {result.best_epoch}: {metrics}")
    if result.comparison:
        print("mean PCC on the val split (also used for early stopping):")
        # Best first; an undefined mean (NaN: every map constant) last.
        ranked = sorted(result.comparison.items(), key=lambda item: (item[1] != item[1], -item[1]))
        for name, value in ranked:
            print(f"  {name:<18} {value:.4f}")
    print(f"NET: {result.checkpoint}")
    model = str(args.classifier) if args.model is None else args.model
    if args.weights is not None:
        model += f" --weights {args.weights}"
    print(
        f"explain with: mlfem explain --model {model} "
        f"--fusion net:{result.checkpoint} IMAGES --out DIR"
    )
    return 0
