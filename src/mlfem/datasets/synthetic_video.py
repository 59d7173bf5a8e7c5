"""A synthetic video gaze benchmark: one textured shape moving across a cluttered, noisy scene,
with simulated observers who follow it.

Every clip is generated on the fly and depends only on ``(seed, index)`` (a NumPy
``SeedSequence([seed, index])``), so datasets of any size cost nothing to create, are
reproducible, and clips can be drawn in any order or in worker processes.

A clip has ``frames`` frames (default 16) of ``size`` pixels (default 64x64). The scene is
static - a textured background with clutter lines and blobs (the image benchmark's), ``n_decoys``
textured shapes and up to ``max_distractors`` solid blobs - and one *target*, a textured shape of
a random class (its texture moves with it), runs in a straight line, with a small sinusoidal
wobble across its path, covering ``travel`` (30-55 %) of the frame's side over the clip. Every
frame gets fresh pixel noise (``noise``, a fraction of 255). **The label is the direction the target moves in**: ``right``, ``left``,
``down`` or ``up``. A single frame does not tell it (the decoys look like the target and
nothing marks the start), so a network has to find the one moving object and its motion;
``moving_distractors`` adds drifting solid blobs for a harder variant (the label is then the
textured mover's direction).

Simulated observers give one gaze sample per frame (rows ``(t, x, y)``, ``t`` the frame index):
each starts near the frame's centre (centre bias), saccades to the target after a reaction lag
of ``reaction_lag`` frames, then pursues it ``pursuit_lag`` frames behind with a personal
offset on the object, re-drawn by small corrective saccades; with probability ``p_glance`` per
frame they glance at a decoy or distractor for 1-3 frames, a sample is lost with probability
``p_lost`` (blinks), and ``gaze_noise`` px of tracker noise is added. The per-frame GFDMs are
built from the rows with :func:`mlfem.gaze.video.video_gfdm` (``sigma``: 5 % of the larger side
by default; ``temporal_sigma`` in frames, 0 by default). ``sample.extras`` holds the target's
per-frame masks, boxes and centres, for tests and analyses.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ._synthetic_scene import CLASS_NAMES as SHAPE_NAMES
from ._synthetic_video_scene import DIRECTIONS, SyntheticVideoConfig, draw_clip
from ._video_gaze import build_video_gfdm, clean_video_gaze
from .protocol import DatasetBase, GFDMSettings
from .registry import register_dataset
from .schema import Sample
from .splits import Splits, resolve_splits

__all__ = ["DIRECTIONS", "SyntheticVideo", "SyntheticVideoConfig"]


def _boxes(masks: np.ndarray) -> torch.Tensor:
    """``(T, 4)`` inclusive boxes ``(x0, y0, x1, y1)`` of per-frame masks (zeros when empty)."""
    out = torch.zeros((len(masks), 4), dtype=torch.float32)
    for k, mask in enumerate(masks):
        ys, xs = np.nonzero(mask)
        if len(xs):
            out[k] = torch.tensor([xs.min(), ys.min(), xs.max(), ys.max()], dtype=torch.float32)
    return out


@register_dataset
class SyntheticVideo(DatasetBase):
    """The synthetic video benchmark as a map-style dataset of clip samples (module docstring).

    A sample is one clip: ``image`` is ``uint8 (3, T, H, W)`` RGB (the image datasets' ``uint8``
    with a time axis after the channels, torchvision's video layout; divide by 255 for floats),
    ``fixations`` one ``(N, 3)`` float32 tensor of rows ``(t, x, y)`` per observer (``t`` the
    frame index in the clip, ``x``, ``y`` 0-based pixels), ``gfdm`` ``(T, H, W)`` float32 (each
    frame sums to 1, or is all zeros when no observer has a sample on it: see
    ``extras["has_gaze"]``), ``labels`` ``[direction]``, ``category`` the target's shape.

    Args:
        n, seed, frames, size, ...: Fields of :class:`SyntheticVideoConfig`.
        split, splits, split_seed, split_fractions: As for the image datasets.
    """

    name = "synthetic-video"
    takes_root = False  # generated on the fly

    def __init__(
        self,
        n: int = 500,
        seed: int = 0,
        *,
        split: str | None = None,
        splits: Splits | str | Path | None = None,
        split_seed: int = 0,
        split_fractions: Sequence[float] = (0.8, 0.1, 0.1),
        **options: Any,
    ) -> None:
        self.config = SyntheticVideoConfig(n=n, seed=seed, **options)
        self.class_names = list(DIRECTIONS)
        self.multi_label = False
        self.skipped = []  # generation never fails; kept for the common dataset API
        self.splits: Splits | None = None
        self._indices = list(range(n))
        self._split_of: dict[int, str | None] = {}
        if split is not None or splits is not None:
            ids = [self.image_id(i) for i in self._indices]
            chosen = resolve_splits(splits, ids, split=split, seed=split_seed,
                                    fractions=split_fractions, dataset=self.name)
            self.splits = chosen
            self._split_of = {i: chosen.split_of(self.image_id(i)) for i in self._indices}
            if split is not None:
                self._indices = [i for i in self._indices if self._split_of[i] == split]

    # ----------------------------------------------------------------- dataset API
    def _entries(self) -> list[int]:
        return self._indices

    @property
    def image_ids(self) -> list[str]:
        return [self.image_id(i) for i in self._indices]

    def image_id(self, i: int) -> str:
        """The id of clip ``i``: ``"<seed>-<index>"``."""
        return f"{self.config.seed}-{i:06d}"

    @property
    def fps(self) -> float:
        """The nominal frame rate (frames are indexed, not timed; used when writing videos)."""
        return float(self.config.fps)

    @property
    def temporal_sigma(self) -> float:
        """The GFDMs' temporal Gaussian sigma in frames (0: each sample on its own frame)."""
        return float(self.config.temporal_sigma)

    def gfdm_settings(self) -> GFDMSettings:
        """Per-frame GFDMs built from the observers' rows with ``config.effective_sigma`` (the
        temporal sigma is :attr:`temporal_sigma`), or none."""
        cfg = self.config
        return GFDMSettings.of(cfg.gfdm, cfg.effective_sigma)

    def summary(self) -> dict[str, Any]:
        return {"dataset": self.name, "samples": len(self), **asdict(self.config)}

    def __repr__(self) -> str:
        c = self.config
        return (f"SyntheticVideo(n={c.n}, seed={c.seed}, frames={c.frames}, "
                f"size={c.height}x{c.width}, samples={len(self)})")

    # ----------------------------------------------------------------- generation
    def generate(self, i: int) -> Sample:
        """Clip ``i`` of this configuration (independent of the split filter)."""
        cfg = self.config
        clip = draw_clip(np.random.default_rng(np.random.SeedSequence([cfg.seed, i])), cfg)
        height, width, frames = cfg.height, cfg.width, cfg.frames
        fixations, n_outside = clean_video_gaze(clip.gaze, height, width)
        gfdm = None
        rows = torch.cat(fixations)
        has_gaze = torch.bincount(rows[:, 0].long(), minlength=frames)[:frames] > 0
        if cfg.gfdm == "fixations":
            gfdm, has_gaze = build_video_gfdm(fixations, frames, height, width,
                                              cfg.effective_sigma, cfg.temporal_sigma)
        image = torch.from_numpy(np.ascontiguousarray(clip.frames.transpose(3, 0, 1, 2)))
        return Sample(
            image_id=self.image_id(i),
            image=image,
            fixations=fixations,
            gfdm=gfdm,
            labels=[clip.label],
            class_names=[self.class_names[clip.label]],
            n_classes_present=1,
            category=SHAPE_NAMES[clip.shape],
            split=self._split_of.get(i),
            durations=None,
            n_outside=n_outside,
            extras={
                "masks": torch.from_numpy(clip.masks),
                "boxes": _boxes(clip.masks),
                "centres": torch.from_numpy(clip.centres.astype(np.float32)),
                "radius": float(clip.radius),
                "has_gaze": has_gaze,
                "fps": self.fps,
                "index": i,
            },
        )

    def _sample(self, entry: int) -> Sample:
        return self.generate(entry)  # a call, not an alias, so a subclass's generate is used
