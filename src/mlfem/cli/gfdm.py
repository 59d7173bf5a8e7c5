"""``mlfem gfdm``: build Gaze Fixation Density Maps from eye-tracking data on disk.

Input is an OSIE-layout folder (``stimuli/`` + ``fixations.mat``) or a fixation CSV (columns
``image, observer, x, y[, duration][, width, height]``). For every image it writes
``<image>.npy`` (float map summing to 1) and, unless ``--no-png``, ``<image>.png`` (8-bit
preview scaled to max 1), plus ``summary.csv`` with the fixation bookkeeping.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path

from mlfem.cli import UsageError
from mlfem.cli._output import writable_folder

_DESCRIPTION = (
    "Build Gaze Fixation Density Maps (GFDM): fixations of all observers, blurred with a "
    "Gaussian of --sigma pixels (or 1 degree of visual angle from the viewing geometry), "
    "normalised to sum 1. INPUT is an OSIE-layout folder (stimuli/ + fixations.mat) or a CSV "
    "with columns image,observer,x,y[,duration][,width,height]."
)


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``gfdm`` sub-command."""
    parser = subparsers.add_parser(
        "gfdm", help="build gaze fixation density maps (.npy + .png)", description=_DESCRIPTION
    )
    parser.add_argument("input", type=Path, help="OSIE-layout folder or fixation CSV file")
    parser.add_argument("-o", "--output", type=Path, required=True, help="output folder")
    sigma = parser.add_argument_group("blur width (give --sigma or the viewing geometry)")
    sigma.add_argument("--sigma", type=float, help="Gaussian sigma in image pixels")
    sigma.add_argument("--screen-width-px", type=float, help="screen width in pixels")
    sigma.add_argument("--screen-width-mm", type=float, help="screen width in mm")
    sigma.add_argument("--distance-mm", type=float, help="viewing distance in mm")
    sigma.add_argument(
        "--sigma-deg",
        type=float,
        default=1.0,
        help="sigma in degrees of visual angle, with the geometry (default 1)",
    )
    parser.add_argument(
        "--collapse",
        action="store_true",
        help="count each fixated pixel once (binary fixation map, MIT convention)",
    )
    parser.add_argument(
        "--duration-weighting", action="store_true", help="weight fixations by their duration"
    )
    parser.add_argument(
        "--padding",
        choices=("reflect", "zero"),
        default="reflect",
        help="border handling of the blur (default reflect, as scipy)",
    )
    parser.add_argument(
        "--one-based",
        action="store_true",
        help="CSV coordinates are 1-based (MATLAB style); OSIE .mat files always are",
    )
    parser.add_argument(
        "--size",
        metavar="WIDTHxHEIGHT",
        help="image size for every image (else from the stimuli or CSV width/height columns)",
    )
    parser.add_argument(
        "--stimuli", type=Path, help="folder of the stimuli, to read CSV images' sizes"
    )
    parser.add_argument(
        "--dtype",
        choices=("float32", "float64"),
        default="float32",
        help="dtype of the computation and of the .npy files (default float32)",
    )
    parser.add_argument("--device", default="cpu", help="torch device (default cpu)")
    parser.add_argument("--no-png", action="store_true", help="skip the .png previews")
    parser.set_defaults(func=run)


def _parse_size(text: str | None) -> tuple[int, int] | None:
    if text is None:
        return None
    parts = text.lower().split("x")
    try:
        width, height = (int(p) for p in parts)
    except ValueError:
        raise UsageError(
            f"--size must look like WIDTHxHEIGHT, e.g. 800x600, got {text!r}"
        ) from None
    if width <= 0 or height <= 0:
        raise UsageError(f"--size must be positive, got {text!r}")
    return height, width


def _sigma(args: argparse.Namespace) -> float:
    from mlfem.gaze import sigma_from_geometry

    geometry = (args.screen_width_px, args.screen_width_mm, args.distance_mm)
    given = [g is not None for g in geometry]
    if args.sigma is not None:
        if any(given):
            raise UsageError("give either --sigma or the viewing geometry, not both")
        if not 0 < args.sigma < float("inf"):
            raise UsageError(f"--sigma must be positive and finite, got {args.sigma}")
        return float(args.sigma)
    if not any(given):
        raise UsageError(
            "no blur width: give --sigma PIXELS, or --screen-width-px, --screen-width-mm and "
            "--distance-mm (and optionally --sigma-deg)"
        )
    if not all(given):
        raise UsageError(
            "incomplete viewing geometry: --screen-width-px, --screen-width-mm and --distance-mm "
            "are all needed"
        )
    try:
        return sigma_from_geometry(*geometry, sigma_deg=args.sigma_deg)
    except ValueError as error:
        raise UsageError(f"viewing geometry: {error}") from None


def _load(args: argparse.Namespace, size: tuple[int, int] | None) -> list:
    from mlfem.gaze import GazeDataError, read_fixation_csv, read_osie

    source: Path = args.input
    try:
        if source.is_dir():
            return read_osie(source, size=size)
        if source.suffix.lower() == ".csv":
            return read_fixation_csv(
                source, size=size, stimuli=args.stimuli, one_based=args.one_based
            )
    except GazeDataError as error:
        raise UsageError(str(error)) from None
    if not source.exists():
        raise UsageError(f"{source}: no such file or folder")
    raise UsageError(
        f"{source}: expected an OSIE-layout folder (stimuli/ + fixations.mat) or a .csv file"
    )


def run(args: argparse.Namespace) -> int:
    """Build and write the GFDMs; returns the exit code."""
    import numpy as np
    import torch
    from PIL import Image

    from mlfem.gaze import gfdm_batch

    sigma = _sigma(args)
    size = _parse_size(args.size)
    if args.collapse and args.duration_weighting:
        raise UsageError("--collapse and --duration-weighting are mutually exclusive")
    try:
        device = torch.device(args.device)
        torch.empty(0, device=device)
    except (RuntimeError, ValueError) as error:
        raise UsageError(f"--device {args.device!r} is not usable: {error}") from None
    images = _load(args, size)
    if args.duration_weighting:
        lacking = [f.name for f in images if f.durations is None]
        if lacking:
            which = "this file has not" if len(lacking) == len(images) else f"{lacking[0]} lacks"
            raise UsageError(
                f"{args.input}: --duration-weighting needs fixation durations, which {which}"
            )
    names = [f.name for f in images]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise UsageError(f"{args.input}: several images map to the output name {duplicates[0]!r}")
    out_dir: Path = writable_folder(args.output, "--output")

    dtype = torch.float64 if args.dtype == "float64" else torch.float32
    groups: dict[tuple[int, int], list[int]] = {}
    for index, fix in enumerate(images):
        groups.setdefault(fix.size, []).append(index)
    dropped: dict[str, int] = {}
    skipped: list[tuple[str, str]] = []  # (image, reason): no usable fixation
    rows = []

    def build(chunk: list) -> object:
        return gfdm_batch(
            chunk,
            sigma,
            collapse=args.collapse,
            padding=args.padding,
            weight_by_duration=args.duration_weighting,
            dtype=dtype,
            device=device,
        )

    for (height, width), indices in groups.items():
        for start in range(0, len(indices), 16):
            chunk = [images[i] for i in indices[start : start + 16]]
            try:
                batch = build(chunk)
            except ValueError:
                # One image without a usable fixation: skip and count it, keep the others.
                chunk = _usable(chunk, build, skipped)
                if not chunk:
                    continue
                batch = build(chunk)
            for fix, density, kept, lost in zip(chunk, batch.maps, batch.n_kept, batch.n_dropped):
                array = density.detach().cpu().numpy()
                np.save(out_dir / f"{fix.name}.npy", array)
                if not args.no_png:
                    preview = array / array.max()
                    Image.fromarray(np.round(preview * 255).astype(np.uint8)).save(
                        out_dir / f"{fix.name}.png"
                    )
                if int(lost):
                    dropped[fix.name] = int(lost)
                rows.append((fix.name, height, width, fix.n_observers, int(kept), int(lost)))

    if not rows:
        raise UsageError(f"{args.input}: {skipped[0][1]}")
    with open(out_dir / "summary.csv", "w") as handle:
        handle.write("image,height,width,observers,fixations_kept,fixations_dropped,sigma_px\n")
        for row in rows:
            handle.write(",".join(str(v) for v in row) + f",{sigma:.6g}\n")
    total = sum(dropped.values())
    print(
        f"wrote {len(rows)} GFDMs (sigma {sigma:.2f} px, padding {args.padding}"
        f"{', collapsed' if args.collapse else ''}"
        f"{', duration-weighted' if args.duration_weighting else ''}) to {out_dir}"
    )
    if total:
        detail = ", ".join(f"{name}: {n}" for name, n in list(dropped.items())[:10])
        more = f", ... ({len(dropped) - 10} more images)" if len(dropped) > 10 else ""
        print(
            f"dropped {total} out-of-bounds fixation(s) in {len(dropped)} image(s): {detail}{more}",
            file=sys.stderr,
        )
    else:
        print("dropped 0 out-of-bounds fixations")
    if skipped:
        detail = "; ".join(reason for _, reason in skipped[:10])
        more = f"; ... ({len(skipped) - 10} more)" if len(skipped) > 10 else ""
        print(
            f"skipped {len(skipped)} image(s) without a usable fixation: {detail}{more}",
            file=sys.stderr,
        )
    return 0


def _usable(chunk: list, build: Callable[[list], object], skipped: list[tuple[str, str]]) -> list:
    """The images of ``chunk`` whose GFDM can be built alone; the others are added to
    ``skipped`` with the reason (all fixations outside the image, none at all)."""
    usable = []
    for fix in chunk:
        try:
            build([fix])
        except ValueError as error:
            skipped.append((fix.name, str(error)))
        else:
            usable.append(fix)
    return usable
