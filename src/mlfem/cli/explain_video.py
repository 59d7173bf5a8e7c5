"""The video route of ``mlfem explain``: videos explained clip by clip with a video model.

Each video is decoded as it is explained (one batch of clips in memory at a time, whatever its
length): clips of ``--clip-length`` frames taken every ``--clip-stride`` frames, starting every
``--clip-step`` frames, preprocessed as the video weights expect, explained in batches of
``--batch-size`` clips. Per clip, the output folder receives ``<stem>_clipNNN.npy`` (the (T, H, W)
float32 maps of the clip's real frames at the video's size), ``<stem>_clipNNN_overlay.<format>``
and, for multi-layer methods, ``<stem>_clipNNN_layers.png``; per video ``<stem>_summary.json``.
A video that cannot be read is reported, counted and skipped (exit code 1).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mlfem.cli import UsageError

__all__ = ["VIDEO_METHODS", "add_video_arguments", "find_video_inputs", "refuse_video_options", "run_video"]

#: Methods known to explain clips (B, C, T, H, W): the FEM family with the fusion operators that
#: work on (B, L, T, H, W). Another method is accepted when its explainer says
#: ``supports_clips = True``.
VIDEO_METHODS = frozenset({"fem", "mlfem", "mlfem-add", "mlfem-max", "mlfem-top", "mlfem-fem"})
DEFAULT_CLIP_LENGTH = 16
DEFAULT_CLIP_BATCH = 2
_VIDEO_OPTIONS = ("clip_length", "clip_stride", "clip_step", "video_format", "strip_frame")


def add_video_arguments(parser: argparse.ArgumentParser) -> None:
    """The options that apply to video inputs only."""
    group = parser.add_argument_group("videos (.mp4 .avi .mov .mkv .webm; needs pip install 'mlfem[video]')")
    group.add_argument("--clip-length", type=int, default=None,
                       help=f"frames per clip given to the model (default {DEFAULT_CLIP_LENGTH})")
    group.add_argument("--clip-stride", type=int, default=None,
                       help="take every N-th frame of the video into a clip (default 1: consecutive frames)")
    group.add_argument("--clip-step", type=int, default=None,
                       help="video frames between the starts of successive clips (default: clip length x "
                       "stride, clips follow one another)")
    group.add_argument("--per-frame-stats", action="store_true",
                       help="FEM statistics of each channel per frame instead of over the whole clip")
    group.add_argument("--video-format", choices=("mp4", "gif", "webp"), default=None,
                       help="format of the overlay animations (default mp4)")
    group.add_argument("--strip-frame", type=int, default=None,
                       help="frame of each clip (0-based) shown in the per-layer strip (default: the middle one)")


def find_video_inputs(inputs: Iterable[str]) -> list[Path]:
    """The video files among the inputs; [] when there are none (the image route). A missing
    input, or videos mixed with images, is a UsageError."""
    from mlfem.images import find_images
    from mlfem.video.reader import VIDEO_SUFFIXES, find_videos

    inputs = list(inputs)
    try:
        videos = find_videos(inputs)
    except FileNotFoundError as error:
        raise UsageError(str(error)) from error
    if not videos:
        return []
    others = [raw for raw in inputs if not (Path(raw).is_file() and Path(raw).suffix.lower() in VIDEO_SUFFIXES)]
    images = find_images(others)
    if images:
        raise UsageError(
            f"the inputs mix {len(videos)} video(s) and {len(images)} image(s) (e.g. {images[0]}); "
            "explain videos and images in separate commands"
        )
    return videos


def refuse_video_options(args: argparse.Namespace) -> None:
    """A UsageError when a video-only option is given for images."""
    given = [name for name in _VIDEO_OPTIONS if getattr(args, name, None) is not None]
    if getattr(args, "per_frame_stats", False):
        given.append("per_frame_stats")
    if given:
        options = ", ".join("--" + name.replace("_", "-") for name in given)
        raise UsageError(f"{options} apply to video inputs only, and the inputs are images")


@dataclass
class _Job:
    """What every video of one command shares."""

    explainer: Any
    preprocessing: Any
    device: Any
    dtype: Any
    out: Path
    clip_length: int
    clip_stride: int
    clip_step: int
    batch_size: int
    video_format: str
    strip_frame: int | None
    class_names: tuple[str, ...] | None
    settings: dict[str, Any]


def _check_clip_options(args: argparse.Namespace) -> None:
    for option in ("clip_length", "clip_stride", "clip_step"):
        value = getattr(args, option)
        if value is not None and value < 1:
            raise UsageError(f"--{option.replace('_', '-')} must be at least 1, got {value}")
    args.clip_length = args.clip_length or DEFAULT_CLIP_LENGTH
    args.clip_stride = args.clip_stride or 1
    args.clip_step = args.clip_step or args.clip_length * args.clip_stride
    if args.strip_frame is not None and not 0 <= args.strip_frame < args.clip_length:
        raise UsageError(f"--strip-frame must lie in 0..{args.clip_length - 1} (a frame of the clip), got {args.strip_frame}")
    if args.fit == "none":
        raise UsageError("--fit none applies to images only: video models take clips of one size (crop or whole)")


def _check_method(args: argparse.Namespace) -> None:
    from mlfem.explainers.registry import method_info

    try:
        method_info(args.method)
    except ValueError as error:
        raise UsageError(str(error)) from error
    if args.fusion is not None and args.fusion.startswith("net:"):
        raise UsageError(f"--fusion {args.fusion}: a trained NET fuses image maps; on videos use add, max, top or fem")


def run_video(args: argparse.Namespace, videos: list[Path]) -> int:
    """Explain ``videos``; returns the exit code (1 when a video failed)."""
    import torch
    from tqdm import tqdm

    from mlfem.cli._explaining import (
        build_explainer, load_model_for, output_names, parse_device, report_outcome,
    )
    from mlfem.cli._output import writable_folder
    from mlfem.video.preprocessing import video_preprocessing_for
    from mlfem.video.reader import VideoReadError, require_av

    _check_clip_options(args)
    try:
        require_av()
    except ImportError as error:
        raise UsageError(str(error)) from error
    if args.model is None:
        raise UsageError("videos need a video model: pass --model r3d_18 (or mc3_18, r2plus1d_18, s3d, "
                         "a TorchScript file, package.module:factory)")
    _check_method(args)
    device = parse_device(args.device)
    writable_folder(args.out, "--out")  # before the model is loaded
    dtype = getattr(torch, args.dtype)
    loaded = load_model_for(args, device, dtype)
    extra = {"per_frame": True} if args.per_frame_stats else {}
    explainer = build_explainer(args, loaded.model, **extra)
    if args.per_frame_stats and not getattr(explainer, "per_frame", False):
        raise UsageError(f"--per-frame-stats: method {args.method} computes no FEM statistics per frame")
    if args.method not in VIDEO_METHODS and not getattr(explainer, "supports_clips", False):
        raise UsageError(f"--method {args.method} does not explain videos; use one of {', '.join(sorted(VIDEO_METHODS))}")
    preprocessing = video_preprocessing_for(args.model).with_fit(args.fit or "crop")
    job = _Job(
        explainer, preprocessing, device, dtype, args.out, args.clip_length, args.clip_stride,
        args.clip_step, args.batch_size or DEFAULT_CLIP_BATCH, args.video_format or "mp4",
        args.strip_frame, loaded.class_names,
        _settings(args, loaded, explainer, preprocessing),
    )
    names = output_names(videos)
    print(f"mlfem explain: {loaded.description}, method {args.method}, {len(videos)} video(s) on {device}, "
          f"clips of {job.clip_length} frame(s) every {job.clip_stride}, starting every {job.clip_step}",
          file=sys.stderr)
    failures: list[tuple[Path, str]] = []
    with explainer:
        for path in videos:
            try:
                summary = _explain_video(job, path, names[path], tqdm)
            except VideoReadError as error:
                failures.append((path, str(error).removeprefix(f"{path}: ")))
                continue
            print(f"{path}: {summary['clips']} clip(s) of {summary['frames']} frame(s) -> "
                  f"{args.out / (names[path] + '_summary.json')}", file=sys.stderr)
    return report_outcome(len(videos), "video(s)", failures, args.out)


def _settings(args, loaded, explainer, preprocessing) -> dict[str, Any]:
    """The run's settings, recorded in every summary."""
    resize = preprocessing.resize_size
    return {
        "model": loaded.description,
        "method": args.method,
        "fusion": args.fusion,
        "k": args.k,
        "layers": list(getattr(explainer, "layer_names", []) or []),
        "per_frame_stats": bool(args.per_frame_stats),
        "clip_length": args.clip_length,
        "clip_stride": args.clip_stride,
        "clip_step": args.clip_step,
        "preprocessing": {
            "fit": preprocessing.fit,
            "resize_size": list(resize) if isinstance(resize, tuple) else resize,
            "crop_size": preprocessing.crop_size,
            "mean": list(preprocessing.mean),
            "std": list(preprocessing.std),
            "source": preprocessing.source,
        },
    }


def _counted(frames: Iterable[Any], tally: list[int]) -> Iterator[Any]:
    for frame in frames:
        tally[0] += 1
        yield frame


def _batched(items: Iterable[Any], size: int) -> Iterator[list[Any]]:
    batch: list[Any] = []
    for item in items:
        batch.append(item)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


def _explain_video(job: _Job, path: Path, stem: str, tqdm) -> dict[str, Any]:
    """Explain one video clip by clip, write its outputs and summary; returns the summary."""
    from mlfem.video.reader import (
        VideoReadError,
        count_clips,
        iter_frames,
        probe_video,
        sample_clips,
    )

    info = probe_video(path)
    expected = count_clips(info.frames, job.clip_length, job.clip_stride, job.clip_step) if info.frames else None
    tally = [0]
    clips = sample_clips(_counted(iter_frames(path), tally), job.clip_length, job.clip_stride, job.clip_step)
    records: list[dict[str, Any]] = []
    summary: dict[str, Any] = {
        "video": str(path),
        "frames": 0,
        "fps": info.fps,
        "height": info.height,
        "width": info.width,
        "clips": 0,
        **job.settings,
        "overlay_format": job.video_format,
        "overlay_fps": _overlay_fps(info.fps, job.clip_stride),
        "container": info.as_dict(),
        "error": None,
        "clip_records": records,
    }
    try:
        with tqdm(total=expected, unit="clip", desc=stem, file=sys.stderr) as progress:
            for batch in _batched(clips, job.batch_size):
                records.extend(_explain_clips(job, batch, stem, info.fps))
                progress.update(len(batch))
    except VideoReadError as error:
        if not records:
            raise
        # A video that broke midway: its summary lists the clips written, and says why it stops.
        summary.update(frames=tally[0], clips=len(records), error=str(error))
        _write_summary(job.out / f"{stem}_summary.json", summary)
        raise VideoReadError(f"{error} ({len(records)} clip(s) written before the error)") from error
    summary.update(frames=tally[0], clips=len(records))
    _write_summary(job.out / f"{stem}_summary.json", summary)
    return summary


def _write_summary(path: Path, summary: dict[str, Any]) -> None:
    from mlfem._atomic import replacing

    with replacing(path) as tmp:
        tmp.write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")


def _overlay_fps(fps: float, stride: int) -> float:
    """The overlay shows every sampled frame: the video's rate divided by the stride."""
    return (fps or 25.0) / stride


def _explain_clips(job: _Job, clips: list, stem: str, fps: float) -> list[dict[str, Any]]:
    """Explain one batch of clips and write their outputs; returns their summary records."""
    import torch

    from mlfem.video.overlay import blend_frames, save_layer_strip, save_maps, write_animation

    prepared = [job.preprocessing(clip.frames) for clip in clips]
    inputs = torch.stack([tensor for tensor, _ in prepared]).to(device=job.device, dtype=job.dtype)
    try:
        fused, per_layer, logits = job.explainer.explain_layers(inputs)
    except ValueError as error:
        # The explainers check their input against the model (a 2-D CNN given clips): the
        # model argument is wrong for videos, whichever video is read.
        raise UsageError(f"--model {job.settings['model']} cannot explain clips: {error}") from error
    if fused.ndim != 4:
        raise RuntimeError(
            f"method {job.settings['method']} returned maps of shape {tuple(fused.shape)} for clips "
            f"{tuple(inputs.shape)}; expected one map per frame (B, T, H, W)"
        )
    if per_layer is not None and per_layer.shape[1] < 2:
        per_layer = None  # one layer: the strip would repeat the map
    records = []
    for index, (clip, (_, placement)) in enumerate(zip(clips, prepared)):
        name = f"{stem}_clip{clip.index:03d}"
        maps = placement.to_original(fused[index].float().cpu())[: clip.valid].numpy()
        save_maps(job.out / f"{name}.npy", maps)
        overlay = f"{name}_overlay.{job.video_format}"
        write_animation(job.out / overlay, blend_frames(clip.frames[: clip.valid], maps),
                        _overlay_fps(fps, job.clip_stride), job.video_format)
        record: dict[str, Any] = {
            "clip": clip.index,
            "frame_indices": list(clip.frame_indices[: clip.valid]),
            "padded_frames": clip.padded,
            "maps": f"{name}.npy",
            "overlay": overlay,
            "layers": None,
        }
        if per_layer is not None:
            frame = min(job.strip_frame, clip.valid - 1) if job.strip_frame is not None else clip.valid // 2
            layer_maps = placement.to_original(per_layer[index][:, frame].float().cpu()).numpy()
            record["layers"] = f"{name}_layers.png"
            record["layers_frame"] = clip.frame_indices[frame]
            save_layer_strip(job.out / record["layers"], clip.frames[frame], layer_maps,
                             job.explainer.layer_names, maps[frame],
                             title=f"{stem} clip {clip.index}, frame {clip.frame_indices[frame]}")
        records.append(record)
    _add_predictions(job, records, logits, stem)
    return records


def _add_predictions(job: _Job, records: list[dict[str, Any]], logits, stem: str) -> None:
    """Each clip's top-5 classes into its record (and its top-1 on stdout), when known."""
    names = job.class_names
    if not names or getattr(logits, "ndim", 0) != 2 or logits.shape[1] != len(names):
        return
    probabilities = logits.detach().float().softmax(dim=1).cpu()
    values, indices = probabilities.topk(min(5, probabilities.shape[1]), dim=1)
    for record, row_values, row_indices in zip(records, values.tolist(), indices.tolist()):
        record["top5"] = [
            {"class_index": i, "class_name": names[i], "probability": round(v, 4)}
            for v, i in zip(row_values, row_indices)
        ]
        print(f"{stem} clip {record['clip']:03d}: {names[row_indices[0]]} ({row_values[0]:.2f})")
