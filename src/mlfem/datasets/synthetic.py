"""A synthetic gaze benchmark: textured shapes on cluttered backgrounds, with simulated observers.

Every sample is generated on the fly and depends only on ``(seed, index)`` (a NumPy
``SeedSequence([seed, index])``), so datasets of any size cost nothing to create, are
reproducible, and samples can be drawn in any order or in worker processes.

Each image shows 1..``max_objects`` *objects* of ``n_classes`` classes; a class is a shape with
its own texture (``circle``: horizontal stripes, ``square``: checkerboard, ``triangle``:
vertical stripes, ``cross``: dots, ``star``: diagonal stripes, ``ring``: anti-diagonal
stripes), drawn in random colours so that colour carries no class information.  Objects sit on a
textured background (smooth colour noise, grain, random line segments and faint blobs) together
with 0..``max_distractors`` *distractors* (irregular solid-coloured polygons, salient but of no
class).  ``mode="single"``: all objects share one class; ``mode="multi"``: 1..``max_classes``
distinct classes (the clutter measure ``n_classes_present``).

Simulated observers make fixations that favour the task-relevant objects: each fixation lands
on a random object (Gaussian around its centre, spread ``0.35 * radius``) except with
probability ``p_centre`` (centre bias: Gaussian around the image centre) or ``p_distractor``
(on a distractor), plus measurement noise of ``noise`` pixels (at 128 px, scaled with the image
size).  The GFDM is built from the pooled fixations with the same code as for real data.
``sample.extras`` holds the objects' masks and boxes, for tests and analyses.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ._gfdm import build_gfdm, clean_gaze
# The scene drawing lives in _synthetic_scene.py; CLASS_NAMES, SyntheticConfig (and the
# texture helper the tests use) stay importable from here.
from ._synthetic_scene import CLASS_NAMES, SyntheticConfig, _texture, draw_scene  # noqa: F401
from .protocol import DatasetBase, GFDMSettings
from .registry import register_dataset
from .schema import Sample
from .splits import Splits, resolve_splits

__all__ = ["CLASS_NAMES", "SyntheticConfig", "SyntheticGaze"]



@register_dataset
class SyntheticGaze(DatasetBase):
    """The synthetic benchmark as a map-style dataset of :class:`Sample` (see module docstring).

    Args:
        n, seed, mode, ...: Fields of :class:`SyntheticConfig`.
        split, splits, split_seed, split_fractions: As for the file datasets: assign ids
            (``"<seed>-<index>"``) to train/val/test and optionally keep one split.
    """

    name = "synthetic"
    takes_root = False  # generated on the fly

    def __init__(
        self,
        n: int = 1000,
        seed: int = 0,
        mode: str = "single",
        *,
        split: str | None = None,
        splits: Splits | str | Path | None = None,
        split_seed: int = 0,
        split_fractions: Sequence[float] = (0.8, 0.1, 0.1),
        **options: Any,
    ) -> None:
        self.config = SyntheticConfig(n=n, seed=seed, mode=mode, **options)
        self.class_names = list(CLASS_NAMES[: self.config.n_classes])
        self.multi_label = mode == "multi"
        self.skipped = []  # generation never fails; kept for the common dataset API
        self.n_fixations_outside = 0  # counted per sample in sample.n_outside
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
        return f"{self.config.seed}-{i:06d}"

    def gfdm_settings(self) -> GFDMSettings:
        """GFDMs built from the simulated fixations with ``config.effective_sigma`` (or none)."""
        cfg = self.config
        return GFDMSettings.of(cfg.gfdm, cfg.effective_sigma, cfg.collapse)

    def summary(self) -> dict[str, Any]:
        return {"dataset": self.name, "samples": len(self), **asdict(self.config)}

    def __repr__(self) -> str:
        c = self.config
        return (
            f"SyntheticGaze(n={c.n}, seed={c.seed}, mode={c.mode!r}, size={c.height}x{c.width}, "
            f"classes={c.n_classes}, samples={len(self)})"
        )

    # ----------------------------------------------------------------- generation
    def generate(self, i: int) -> Sample:
        """Sample ``i`` of this configuration (independent of the split filter)."""
        cfg = self.config
        scene = draw_scene(np.random.default_rng(np.random.SeedSequence([cfg.seed, i])), cfg)
        height, width = cfg.height, cfg.width
        fixations, durations, n_outside = clean_gaze(scene.gaze, height, width, drop_outside=True)
        gfdm = None
        if cfg.gfdm == "fixations":
            points = torch.cat(fixations)
            if len(points) == 0:  # every fixation fell outside: look at the first object
                first = scene.objects[0]
                points = torch.tensor([[first.cx, first.cy]], dtype=torch.float32)
            gfdm = build_gfdm(points, height, width, cfg.effective_sigma, cfg.collapse)
        labels = sorted({item.kind for item in scene.objects})
        return Sample(
            image_id=self.image_id(i),
            image=torch.from_numpy(np.ascontiguousarray(scene.image.transpose(2, 0, 1))),
            fixations=fixations,
            gfdm=gfdm,
            labels=labels,
            class_names=[self.class_names[k] for k in labels],
            n_classes_present=len(labels),
            category=None,
            split=self._split_of.get(i),
            durations=durations,
            n_outside=n_outside,
            extras=scene.extras(i),
        )

    def _sample(self, entry: int) -> Sample:
        return self.generate(entry)  # a call, not an alias, so a subclass's generate is used
