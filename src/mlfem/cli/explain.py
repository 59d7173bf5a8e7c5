"""``mlfem explain``: explanation maps for images, videos, or folders of either.

Videos (:data:`mlfem.video.VIDEO_SUFFIXES`) take the route of :mod:`mlfem.cli.explain_video`;
this module parses the arguments, loads the model and explains images.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from mlfem.cli import UsageError, add_command
from mlfem.cli._output import writable_folder

DTYPES = ("float32", "float16", "bfloat16")


_SUMMARY = "explain a model's view of images with MLFEM, FEM or another method"
_DESCRIPTION = """\
For each image, writes OUT/<stem>.npy (float32 map in [0, 1] at the image's size),
OUT/<stem>_overlay.png (heat map over the image) and, for multi-layer FEM methods,
OUT/<stem>_layers.png (every layer's FEM map, as in the paper's Fig. 1). Without --model,
explains the ImageNet-pretrained EfficientNet-Lite0 installed with mlfem. When the model's
classes are known, OUT/predictions.csv holds each image's top-5 classes.

Videos (.mp4 .avi .mov .mkv .webm, or folders of them) are explained clip by clip with a video
model (--model r3d_18): per clip OUT/<stem>_clipNNN.npy ((T, H, W) float32 maps at the frames'
size), OUT/<stem>_clipNNN_overlay.mp4 (or .gif/.webp) and, for multi-layer methods,
OUT/<stem>_clipNNN_layers.png (every layer's map on one frame); per video OUT/<stem>_summary.json
(see docs/video.md).
"""


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = add_command(subparsers, "explain", _SUMMARY, _DESCRIPTION)
    parser.add_argument("inputs", nargs="+", metavar="INPUT", help="image or video files, or folders of them")
    parser.add_argument(
        "--model",
        default=None,
        help="efficientnet_lite0 (installed, pretrained), a torchvision name (resnet50), timm:<name>, "
        "a TorchScript/.pt2 file, or package.module:factory (default: efficientnet_lite0 --weights imagenet)",
    )
    parser.add_argument(
        "--weights",
        default=None,
        help="'imagenet' (the installed file for efficientnet_lite0, otherwise a download; for a "
        "video model its Kinetics-400 weights, also called 'kinetics'), or a local "
        "state_dict (.pth read with weights_only=True, .safetensors)",
    )
    parser.add_argument("--method", default="mlfem", help="explanation method (see 'mlfem methods'); default mlfem")
    parser.add_argument(
        "--fusion",
        default=None,
        help="MLFEM fusion: max, add, top, fem, net:PATH (a NET from train-fusion) or net:bundled "
        "(the NET shipped for efficientnet_lite0); default: the method's (add)",
    )
    parser.add_argument("--alpha", type=float, default=0.5, help="weight of the accumulated map in add/top")
    parser.add_argument("--k", type=float, default=2.0, help="FEM threshold in standard deviations (default 2)")
    parser.add_argument("--layers", default="auto", help="'auto', 'auto-rectified' (auto, signed "
                        "block outputs clamped at 0; docs/real-network.md), 'auto-mlp'/'auto-mlp-rectified' "
                        "(a vision transformer's MLP activations; docs/methods.md) or comma-separated module names")
    parser.add_argument("--normalize", choices=("end", "interleaved"), default="end", help="fusion normalisation")
    parser.add_argument(
        "--fit",
        choices=("whole", "crop", "none"),
        default=None,
        help="how inputs meet the model input: whole image resized (default for images), resize and "
        "centre crop (default for videos, as the video weights expect), or native size (images only)",
    )
    parser.add_argument("--batch-size", type=int, default=None,
                        help="images (default 8) or video clips (default 2) per forward pass")
    parser.add_argument("--device", default=None, help="cpu, cuda, cuda:1... (default: cuda if available)")
    parser.add_argument("--dtype", choices=DTYPES, default="float32", help="model precision")
    parser.add_argument("--out", required=True, type=Path, help="output folder (created if needed)")
    from mlfem.cli.explain_video import add_video_arguments

    add_video_arguments(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import torch
    from tqdm import tqdm

    from mlfem.cli._explaining import (
        build_explainer, load_model_for, output_names, parse_device, report_outcome,
    )
    from mlfem.cli.explain_video import find_video_inputs, run_video
    from mlfem.images import find_images

    if args.batch_size is not None and args.batch_size < 1:
        raise UsageError(f"--batch-size must be at least 1, got {args.batch_size}")
    if not 0.0 <= args.alpha <= 1.0:
        raise UsageError(f"--alpha must lie in [0, 1], got {args.alpha}")
    videos = find_video_inputs(args.inputs)  # UsageError for missing inputs, or images mixed in
    if videos:
        return run_video(args, videos)
    try:
        paths = find_images(args.inputs)
    except FileNotFoundError as error:
        raise UsageError(str(error)) from error
    if not paths:
        raise UsageError(f"no image files found in {', '.join(args.inputs)}")
    from mlfem.cli.explain_video import refuse_video_options

    refuse_video_options(args)
    args.batch_size = args.batch_size or 8
    args.fit = args.fit or "whole"
    device = parse_device(args.device)
    writable_folder(args.out, "--out")  # before the model is loaded
    dtype = getattr(torch, args.dtype)
    if args.model is None:
        # A newcomer's first command explains a real network, offline.
        from mlfem.models.pretrained import DEFAULT_MODEL

        args.model = DEFAULT_MODEL
        args.weights = args.weights or "imagenet"
    loaded = load_model_for(args, device, dtype)
    explainer = build_explainer(args, loaded.model)
    preprocessing = loaded.preprocessing.with_fit(args.fit)
    names = output_names(paths)

    print(f"mlfem explain: {loaded.description}, method {args.method}, {len(paths)} image(s) on {device}",
          file=sys.stderr)
    failures: list[tuple[Path, str]] = []
    predictions = PredictionWriter(args.out / "predictions.csv", loaded.class_names)
    with explainer, predictions, tqdm(total=len(paths), unit="img", desc="explain", file=sys.stderr) as progress:
        for start in range(0, len(paths), args.batch_size):
            batch_paths = paths[start : start + args.batch_size]
            failures.extend(
                _explain_batch(explainer, batch_paths, names, preprocessing, device, dtype, args.out, predictions)
            )
            progress.update(len(batch_paths))

    return report_outcome(len(paths), "image(s)", failures, args.out)


def _explain_batch(
    explainer, paths, names, preprocessing, device, dtype, out: Path, predictions: PredictionWriter
) -> list[tuple[Path, str]]:
    """Explain one batch; returns the (path, reason) of the images that failed."""
    import torch

    from mlfem.images import ImageReadError, read_image

    failures: list[tuple[Path, str]] = []
    items = []
    for path in paths:
        try:
            image = read_image(path)
        except ImageReadError as error:
            failures.append((path, str(error).removeprefix(f"{path}: ")))
            continue
        tensor, placement = preprocessing(image)
        items.append((path, image, tensor, placement))
    # Images of different sizes (--fit none) go through the model in separate groups.
    groups: dict[tuple[int, ...], list] = {}
    for item in items:
        groups.setdefault(tuple(item[2].shape), []).append(item)
    for group in groups.values():
        images = torch.stack([item[2] for item in group]).to(device=device, dtype=dtype)
        # Multi-layer methods also give their per-layer maps (for the grid), and methods
        # built on one forward pass its output (for the prediction).
        fused, per_layer, logits = explainer.explain_layers(images)
        if per_layer is not None and per_layer.shape[1] < 2:
            per_layer = None  # one layer: the grid would repeat the map
        if predictions.enabled and logits is None:
            with torch.inference_mode():  # methods that do not expose the model's output
                logits = explainer.model(images)
        for index, (path, image, _, placement) in enumerate(group):
            _write_outputs(out, names[path], image, placement, fused[index], per_layer, index, explainer)
        if logits is not None:
            predictions.add([names[item[0]] for item in group], logits)
    return failures


class PredictionWriter:
    """Writes each image's top-5 classes to ``predictions.csv`` as the batches come, and its
    top-1 class to stdout, when the model's class names are known (otherwise does nothing)."""

    TOP = 5

    def __init__(self, path: Path, class_names) -> None:
        self.path = path
        self.class_names = class_names
        self.enabled = bool(class_names)
        self._handle = None

    def __enter__(self) -> PredictionWriter:
        if self.enabled:
            import csv

            self._handle = open(self.path, "w", newline="", encoding="utf-8")
            self._csv = csv.writer(self._handle)
            self._csv.writerow(["image", "rank", "class_index", "class_name", "probability"])
        return self

    def __exit__(self, *exc_info) -> None:
        if self._handle is not None:
            self._handle.close()

    def add(self, stems: list[str], logits) -> None:
        """Record the predictions of one group of images (``logits``: (B, classes))."""
        if self._handle is None or getattr(logits, "ndim", 0) != 2 or logits.shape[1] != len(self.class_names):
            return
        probabilities = logits.detach().float().softmax(dim=1).cpu()
        values, indices = probabilities.topk(min(self.TOP, probabilities.shape[1]), dim=1)
        for stem, row_values, row_indices in zip(stems, values.tolist(), indices.tolist()):
            for rank, (value, index) in enumerate(zip(row_values, row_indices), start=1):
                self._csv.writerow([stem, rank, index, self.class_names[index], f"{value:.4f}"])
            print(f"{stem}: {self.class_names[row_indices[0]]} ({row_values[0]:.2f})")
        self._handle.flush()


def _write_outputs(out, stem, image, placement, fused, per_layer, index, explainer) -> None:
    import numpy as np
    import torch

    from mlfem.normalize import resize_maps
    from mlfem.visualize import overlay, save_layer_grid

    saliency = placement.to_original(fused.float().cpu()).numpy().astype(np.float32)
    np.save(out / f"{stem}.npy", saliency)
    overlay(image, saliency).save(out / f"{stem}_overlay.png")
    if per_layer is not None:
        # Shown at the image's own aspect ratio, at most 256 pixels wide.
        scale = min(1.0, 256 / image.width)
        size = (max(1, round(image.height * scale)), max(1, round(image.width * scale)))
        layer_maps = resize_maps(placement.to_original(per_layer[index].float().cpu()), size)
        save_layer_grid(
            out / f"{stem}_layers.png",
            layer_maps.numpy(),
            explainer.layer_names,
            image=image.resize((size[1], size[0])),
            fused=resize_maps(torch.from_numpy(saliency), size).numpy(),
            title=stem,
        )
