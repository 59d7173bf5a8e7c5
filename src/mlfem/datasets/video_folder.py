"""``video-folder``: a documented layout for eye tracking recorded on videos; samples are clips.

Layout (``docs/datasets.md`` has the full description)::

    <root>/videos/<id>.mp4             videos (.mp4 .avi .mov .mkv .webm), read with PyAV, and/or
    <root>/frames/<id>/000001.png      one folder of frames per video (.png .jpg), name order
    <root>/fixations/<id>.csv          header: observer,t,x,y[,duration]
    <root>/labels.csv        optional  header: id,label  (one row per label of a video)

``t`` is when the fixation starts, in seconds from the first frame (``time_unit="frame"``: a
frame index), ``x`` (column) and ``y`` (row) 0-based pixels of the video's frames, ``duration``
in ms: a fixation is on every frame it overlaps (:func:`mlfem.gaze.video.expand_fixations`);
without durations each row is on one frame (gaze samples). A video's frame rate comes from the
file; ``fps=`` overrides it and is needed for folders of frames with times in seconds.

**Clips.** A video is cut into clips of ``clip_length`` frames taken every ``stride`` frames
(a clip spans ``(clip_length - 1) * stride + 1`` frames); clip ``k`` starts at frame
``k * step`` (default ``step = clip_length * stride``: clips follow one another without overlap
or gap). Frames after the last whole clip are left out (counted in ``summary()``), and a video
shorter than one clip is skipped. A clip's frame ``j`` (video frame ``start + j * stride``)
stands for the ``stride`` video frames from it, so every fixation falls on some clip frame.
One sample is one clip, with the schema of :class:`~mlfem.datasets.SyntheticVideo`: ``image``
``uint8 (3, T, H, W)``, ``fixations`` per observer ``(N, 3)`` rows ``(t, x, y)`` with ``t`` the
clip's frame index, ``gfdm`` ``(T, H, W)`` (frames without gaze all zeros,
``extras["has_gaze"]``), ``image_id`` ``"<id>#<clip index, 4 digits>"``. With a
``temporal_sigma``, fixations just outside a clip weigh on its edge frames, as in the whole
video. Splits are drawn over videos, not clips, so no video is in two splits.

Bad input: a video that cannot be opened or decoded, a fixation file that is missing (with
GFDMs from fixations), has no usable header or no usable row is **skipped** and listed in
``skipped``; a malformed row (missing field, not a number, negative duration) is left out and
**counted** (``n_bad_rows``, ``bad_rows``: file, count, first reason), the video is kept.
There is no default sigma: pass ``sigma=`` in pixels (about one degree of visual angle).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ._video_frames import VIDEO_SUFFIXES, FrameSource, probe_source, read_frames
from ._video_gaze import build_video_gfdm, clean_video_gaze, read_fixation_rows
from .folder import _read_csv
from .protocol import DatasetBase, GFDMSettings
from .registry import register_dataset
from .schema import DatasetWarning, LayoutError, Sample, SampleError, SkippedItem
from .splits import Splits, resolve_splits

__all__ = ["VideoFolder"]

LAYOUT = """\
<root>/videos/<id>.mp4          videos (.mp4 .avi .mov .mkv .webm), and/or
<root>/frames/<id>/000001.png   one folder of frames per video (.png .jpg, name order)
<root>/fixations/<id>.csv       header: observer,t,x,y[,duration]  (t: s, x, y: 0-based px, ms)
<root>/labels.csv               optional, header: id,label  (one row per label)
"""
TIME_UNITS = ("s", "frame")


@dataclass
class _Video:
    video_id: str
    source: FrameSource
    fps: float | None
    rows: np.ndarray  # (M, 4): observer index, video frame, x, y
    n_observers: int
    labels: tuple[int, ...] = ()
    split: str | None = None


@dataclass(frozen=True)
class _ClipEntry:
    video: int  # index into the dataset's videos
    clip: int
    start: int  # video frame of the clip's first frame


@register_dataset
class VideoFolder(DatasetBase):
    """Videos (or folders of frames), fixation CSVs and optional labels; see module docstring.

    Args:
        root: the dataset folder.
        clip_length, stride, step: how videos are cut into clips (module docstring).
        fps: frames per second, overriding the files' (needed for folders of frames when ``t``
            is in seconds).
        time_unit: ``"s"`` (``t`` in seconds) or ``"frame"`` (``t`` a frame index).
        sigma: spatial GFDM sigma in pixels (required for GFDMs from fixations).
        temporal_sigma: temporal GFDM sigma in clip frames (0: none).
        gfdm: ``"auto"``/``"fixations"`` or ``"none"``.
        drop_outside: drop rows outside the frame from ``sample.fixations`` (always counted).
        verify: ``"header"`` (open every video, read its header) or ``"full"`` (also decode
            every frame once, so ``__getitem__`` cannot fail later).
        split, splits, split_seed, split_fractions: as for the image datasets, over video ids.
    """

    name = "video-folder"
    layout = LAYOUT
    default_sigma = None  # depends on the viewing geometry: must be given

    def __init__(
        self,
        root: str | Path,
        *,
        clip_length: int = 16,
        stride: int = 1,
        step: int | None = None,
        fps: float | None = None,
        time_unit: str = "s",
        sigma: float | None = None,
        temporal_sigma: float = 0.0,
        gfdm: str = "auto",
        drop_outside: bool = True,
        verify: str = "header",
        split: str | None = None,
        splits: Splits | str | Path | None = None,
        split_seed: int = 0,
        split_fractions: Sequence[float] = (0.8, 0.1, 0.1),
    ) -> None:
        if clip_length < 1 or stride < 1 or (step is not None and step < 1):
            raise ValueError("clip_length, stride and step must be >= 1")
        if time_unit not in TIME_UNITS:
            raise ValueError(f"time_unit must be one of {TIME_UNITS}, got {time_unit!r}")
        if gfdm not in ("auto", "fixations", "none"):
            raise ValueError(f"gfdm must be 'auto', 'fixations' or 'none' (no shipped maps for "
                             f"video), got {gfdm!r}")
        if verify not in ("header", "full"):
            raise ValueError(f"verify must be 'header' or 'full', got {verify!r}")
        if fps is not None and not (math.isfinite(fps) and fps > 0):
            raise ValueError(f"fps must be > 0, got {fps}")
        self.gfdm_source = "none" if gfdm == "none" else "fixations"
        if self.gfdm_source == "fixations" and not (sigma is not None and sigma > 0):
            raise ValueError(f"{self.name}: GFDMs from fixations need sigma=<pixels> > 0 (about "
                             f"one degree of visual angle), got {sigma}")
        if not temporal_sigma >= 0:
            raise ValueError(f"temporal_sigma must be >= 0, got {temporal_sigma}")
        self.root = Path(root).expanduser()
        if not self.root.is_dir():
            raise LayoutError(self.name, self.root, self.layout)
        self.clip_length, self.stride = int(clip_length), int(stride)
        self.step = int(step) if step is not None else self.clip_length * self.stride
        self.fps, self.time_unit, self.verify = fps, time_unit, verify
        self.sigma = float(sigma) if self.gfdm_source == "fixations" else None
        self.temporal_sigma = float(temporal_sigma)
        self.drop_outside = bool(drop_outside)
        self.multi_label = False
        self.class_names: list[str] = []
        self.skipped: list[SkippedItem] = []
        self.bad_rows: list[tuple[str, int, str]] = []
        self.splits: Splits | None = None
        self.info: dict[str, Any] = {"frames_not_in_clips": 0}
        self._videos = self._index()
        self._apply_labels()
        self._apply_splits(split, splits, split_seed, split_fractions)
        self._clips = self._cut()
        self._report()

    # ----------------------------------------------------------------- indexing
    @property
    def span(self) -> int:
        """Video frames one clip spans."""
        return (self.clip_length - 1) * self.stride + 1

    def _skip(self, item: str, path: Path | str, reason: str) -> None:
        self.skipped.append(SkippedItem(image_id=item, path=str(path), reason=reason))

    def _sources(self) -> dict[str, Path]:
        videos, frames = self.root / "videos", self.root / "frames"
        if not videos.is_dir() and not frames.is_dir():
            raise LayoutError(self.name, videos, self.layout)
        found: dict[str, Path] = {}
        if videos.is_dir():
            for path in sorted(p for p in videos.rglob("*") if p.is_file()):
                if path.suffix.lower() in VIDEO_SUFFIXES and not path.name.startswith("."):
                    found[path.relative_to(videos).with_suffix("").as_posix()] = path
        if frames.is_dir():
            for path in sorted(p for p in frames.iterdir() if p.is_dir()):
                if path.name in found:
                    raise ValueError(f"{self.name}: {path.name!r} is both a video file and a "
                                     f"folder of frames ({found[path.name]}, {path})")
                found[path.name] = path
        return found

    def _index(self) -> list[_Video]:
        fixations_dir = self.root / "fixations"
        if self.gfdm_source == "fixations" and not fixations_dir.is_dir():
            raise LayoutError(self.name, fixations_dir, self.layout)
        videos = []
        for video_id, path in self._sources().items():
            try:
                source = probe_source(path, count=self.verify == "full")
            except ValueError as error:
                self._skip(video_id, path, str(error))
                continue
            fps = self.fps if self.fps is not None else source.fps
            csv_path = fixations_dir / f"{video_id}.csv"
            if not csv_path.is_file():
                if self.gfdm_source == "fixations":
                    self._skip(video_id, csv_path, "fixation file missing")
                    continue
                rows, n_observers = np.zeros((0, 4)), 0
            else:
                try:
                    rows, n_observers = self._parse_fixations(csv_path, fps)
                except ValueError as error:
                    self._skip(video_id, csv_path, str(error))
                    continue
            videos.append(_Video(video_id, source, fps, rows, n_observers))
        return videos

    def _parse_fixations(self, path: Path, fps: float | None) -> tuple[np.ndarray, int]:
        rows, n_observers, n_bad, first_bad = read_fixation_rows(path, fps, self.time_unit)
        if n_bad:
            self.bad_rows.append((str(path), n_bad, first_bad))
        return rows, n_observers

    def _apply_labels(self) -> None:
        labels_csv = self.root / "labels.csv"
        if not labels_csv.is_file():
            return
        header, lines = _read_csv(labels_csv, ("id", "label"))
        ci, cl = header.index("id"), header.index("label")
        by_id = {video.video_id: video for video in self._videos}
        pairs = []
        for line, row in enumerate(lines, start=2):
            if not any(cell.strip() for cell in row):
                continue
            if len(row) <= max(ci, cl) or not row[cl].strip():
                raise ValueError(f"{labels_csv} line {line}: expected id,label")
            if row[ci].strip() in by_id:
                pairs.append((row[ci].strip(), row[cl].strip()))
        self.class_names = sorted({label for _, label in pairs})
        index = {name: k for k, name in enumerate(self.class_names)}
        for video_id, label in pairs:
            video = by_id[video_id]
            video.labels = tuple(sorted({*video.labels, index[label]}))
        self.multi_label = any(len(v.labels) > 1 for v in self._videos)

    def _apply_splits(self, split: str | None, splits: Splits | str | Path | None, seed: int,
                      fractions: Sequence[float]) -> None:
        if splits is None and split is None:
            return
        chosen = resolve_splits(splits, [v.video_id for v in self._videos], split=split,
                                seed=seed, fractions=fractions, dataset=self.name)
        self.splits = chosen
        for video in self._videos:
            video.split = chosen.split_of(video.video_id)
        if split is not None:
            self._videos = [v for v in self._videos if v.split == split]

    def _cut(self) -> list[_ClipEntry]:
        clips = []
        for index, video in enumerate(self._videos):
            n = video.source.n_frames
            count = 0 if n < self.span else (n - self.span) // self.step + 1
            if count == 0:
                self._skip(video.video_id, video.source.path,
                           f"shorter than one clip ({n} frames < {self.span})")
                continue
            last_end = (count - 1) * self.step + self.span
            self.info["frames_not_in_clips"] += n - last_end
            clips.extend(_ClipEntry(index, k, k * self.step) for k in range(count))
        return clips

    def _report(self) -> None:
        if self.skipped:
            first = self.skipped[0]
            warnings.warn(f"{self.name}: skipped {len(self.skipped)} video(s) (see .skipped); "
                          f"first: {first.image_id}: {first.reason} ({first.path})",
                          DatasetWarning, stacklevel=3)
        if self.bad_rows:
            path, count, reason = self.bad_rows[0]
            warnings.warn(f"{self.name}: left out {self.n_bad_rows} malformed fixation row(s) "
                          f"in {len(self.bad_rows)} file(s) (see .bad_rows); first: {path}: "
                          f"{count} row(s), {reason}", DatasetWarning, stacklevel=3)

    # ----------------------------------------------------------------- dataset API
    @property
    def n_bad_rows(self) -> int:
        """Malformed fixation rows left out, over all files."""
        return sum(count for _, count, _ in self.bad_rows)

    @property
    def video_ids(self) -> list[str]:
        return [v.video_id for v in self._videos]

    @property
    def image_ids(self) -> list[str]:
        return [self._clip_id(entry) for entry in self._clips]

    def _clip_id(self, entry: _ClipEntry) -> str:
        return f"{self._videos[entry.video].video_id}#{entry.clip:04d}"

    def gfdm_settings(self) -> GFDMSettings:
        """Per-frame GFDMs from the fixations with ``sigma`` (the temporal sigma is
        :attr:`temporal_sigma`), or none."""
        return GFDMSettings.of(self.gfdm_source, self.sigma)

    def summary(self) -> dict[str, Any]:
        return {
            "dataset": self.name, "root": str(self.root), "samples": len(self),
            "videos": len(self._videos), "skipped": self.n_skipped,
            "bad_fixation_rows": self.n_bad_rows, "clip_length": self.clip_length,
            "stride": self.stride, "step": self.step, "gfdm": self.gfdm_source,
            "sigma": self.sigma, "temporal_sigma": self.temporal_sigma,
            "classes": self.num_classes, **self.info,
        }

    def __repr__(self) -> str:
        return (f"VideoFolder(root={str(self.root)!r}, videos={len(self._videos)}, "
                f"clips={len(self)}, skipped={self.n_skipped}, sigma={self.sigma})")

    def _entries(self) -> list[_ClipEntry]:
        return self._clips

    def _sample(self, entry: _ClipEntry) -> Sample:
        video = self._videos[entry.video]
        source, clip_id = video.source, self._clip_id(entry)
        indices = [entry.start + j * self.stride for j in range(self.clip_length)]
        try:
            frames = read_frames(source, indices)
        except ValueError as error:
            raise SampleError(clip_id, source.path, str(error)) from None
        height, width, length = source.height, source.width, self.clip_length
        # Video frame -> clip frame: clip frame j stands for video frames start + j*stride ...
        rows = video.rows
        if self.temporal_sigma > 0:  # only rows the temporal kernel reaches from the clip
            reach = (int(4.0 * self.temporal_sigma + 0.5) + 1) * self.stride
        else:
            reach = 0
        near = (rows[:, 1] >= entry.start - reach) & (rows[:, 1] < entry.start + self.span + reach)
        rows = rows[near]
        clip_t = np.floor((rows[:, 1] - entry.start) / self.stride)
        clip_rows = np.stack([clip_t, rows[:, 2], rows[:, 3]], axis=1)
        inside = (clip_t >= 0) & (clip_t < length)
        observers = [clip_rows[inside & (rows[:, 0] == j)] for j in range(video.n_observers)]
        fixations, n_outside = clean_video_gaze(observers, height, width, self.drop_outside)
        has_gaze = torch.zeros(length, dtype=torch.bool)
        if inside.any():
            has_gaze[torch.from_numpy(clip_t[inside].astype(np.int64))] = True
        gfdm = None
        if self.gfdm_source == "fixations":
            assert self.sigma is not None
            # ... and rows near the clip (within the temporal kernel) weigh on its edge frames.
            gfdm, has_gaze = build_video_gfdm(torch.from_numpy(clip_rows), length, height,
                                              width, self.sigma, self.temporal_sigma)
        fps = video.fps
        return Sample(
            image_id=clip_id,
            image=torch.from_numpy(np.ascontiguousarray(frames.transpose(3, 0, 1, 2))),
            fixations=fixations,
            gfdm=gfdm,
            labels=list(video.labels),
            class_names=[self.class_names[k] for k in video.labels],
            n_classes_present=len(video.labels),
            split=video.split,
            n_outside=n_outside,
            extras={
                "video": video.video_id, "clip": entry.clip, "frame_indices": indices,
                "fps": fps / self.stride if fps else None, "has_gaze": has_gaze,
                "start_seconds": entry.start / fps if fps else None,
            },
        )
