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

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image, ImageDraw
from torch.utils.data import Dataset

from ._base import build_gfdm, clean_gaze
from .registry import register_dataset
from .schema import Gaze, Sample
from .splits import Splits, make_splits

__all__ = ["CLASS_NAMES", "SyntheticConfig", "SyntheticGaze"]

CLASS_NAMES = ("circle", "square", "triangle", "cross", "star", "ring")
_TEXTURES = ("hstripes", "checker", "vstripes", "dots", "diag", "antidiag")


@dataclass(frozen=True)
class SyntheticConfig:
    """Parameters of the synthetic benchmark (see the module docstring)."""

    n: int = 1000
    seed: int = 0
    mode: str = "single"
    size: int | tuple[int, int] = 128
    n_classes: int = 6
    max_objects: int = 3
    max_classes: int = 3
    max_distractors: int = 2
    clutter: int = 12
    n_observers: int = 8
    fixations_per_observer: tuple[int, int] = (4, 8)
    p_centre: float = 0.1
    p_distractor: float = 0.15
    noise: float = 2.0
    sigma: float | None = None
    collapse: bool = False
    gfdm: str = "fixations"

    def __post_init__(self) -> None:
        if self.n < 0 or self.seed < 0:
            raise ValueError("n and seed must be >= 0")
        if self.mode not in ("single", "multi"):
            raise ValueError("mode must be 'single' or 'multi'")
        if not 1 <= self.n_classes <= len(CLASS_NAMES):
            raise ValueError(f"n_classes must be in 1..{len(CLASS_NAMES)}")
        if self.max_objects < 1 or self.max_classes < 1 or self.max_distractors < 0:
            raise ValueError("max_objects and max_classes must be >= 1, max_distractors >= 0")
        if min(self.height, self.width) < 32:
            raise ValueError("images must be at least 32x32")
        lo, hi = self.fixations_per_observer
        if not 1 <= lo <= hi or self.n_observers < 1:
            raise ValueError("need n_observers >= 1 and 1 <= fixations_per_observer[0] <= [1]")
        if self.p_centre < 0 or self.p_distractor < 0 or self.p_centre + self.p_distractor > 1:
            raise ValueError("p_centre and p_distractor must be >= 0 and sum to <= 1")
        if self.gfdm not in ("fixations", "none"):
            raise ValueError("gfdm must be 'fixations' or 'none' (there are no shipped maps)")
        if self.sigma is not None and not self.sigma > 0:
            raise ValueError("sigma must be > 0")

    @property
    def height(self) -> int:
        return self.size if isinstance(self.size, int) else int(self.size[0])

    @property
    def width(self) -> int:
        return self.size if isinstance(self.size, int) else int(self.size[1])

    @property
    def scale(self) -> float:
        """Image size relative to the 128 px reference all pixel parameters refer to."""
        return min(self.height, self.width) / 128.0

    @property
    def effective_sigma(self) -> float:
        # About a third of a typical object's width at any image size (6.4 px at 128 px).
        return self.sigma if self.sigma is not None else 0.05 * max(self.height, self.width)


@dataclass
class _Item:
    kind: int  # class index, or -1 for a distractor
    cx: float
    cy: float
    r: float


@register_dataset
class SyntheticGaze(Dataset[Sample]):
    """The synthetic benchmark as a map-style dataset of :class:`Sample` (see module docstring).

    Args:
        n, seed, mode, ...: Fields of :class:`SyntheticConfig`.
        split, splits, split_seed, split_fractions: As for the file datasets: assign ids
            (``"<seed>-<index>"``) to train/val/test and optionally keep one split.
    """

    name = "synthetic"

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
        self.skipped: list = []  # generation never fails; kept for the common dataset API
        self.n_fixations_outside = 0  # counted per sample in sample.n_outside
        self.splits: Splits | None = None
        self._indices = list(range(n))
        self._split_of: dict[int, str | None] = {}
        if split is not None or splits is not None:
            ids = [self.image_id(i) for i in self._indices]
            if isinstance(splits, Splits):
                chosen = splits
            elif splits is not None and Path(splits).exists():
                chosen = Splits.load(splits)
            else:
                fractions = tuple(split_fractions)
                chosen = make_splits(ids, fractions, seed=split_seed, dataset=self.name)
                if splits is not None:
                    chosen.save(splits)
            if split is not None and split not in chosen.names:
                raise ValueError(f"unknown split {split!r}; available: {chosen.names}")
            self.splits = chosen
            self._split_of = {i: chosen.split_of(self.image_id(i)) for i in self._indices}
            if split is not None:
                self._indices = [i for i in self._indices if self._split_of[i] == split]

    # ----------------------------------------------------------------- dataset API
    def __len__(self) -> int:
        return len(self._indices)

    def __getitem__(self, index: int) -> Sample:
        if not -len(self._indices) <= index < len(self._indices):
            raise IndexError(f"index {index} out of range for {len(self._indices)} samples")
        return self.generate(self._indices[index])

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @property
    def n_skipped(self) -> int:
        return 0

    @property
    def image_ids(self) -> list[str]:
        return [self.image_id(i) for i in self._indices]

    def image_id(self, i: int) -> str:
        return f"{self.config.seed}-{i:06d}"

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
        rng = np.random.default_rng(np.random.SeedSequence([cfg.seed, i]))
        height, width = cfg.height, cfg.width
        image = _background(rng, cfg)
        objects, distractors = _layout(rng, cfg)
        object_masks, distractor_masks = [], []
        for item in distractors:
            mask = _distractor_mask(rng, item, width, height)
            _paint_solid(rng, image, mask)
            distractor_masks.append(mask)
        for item in objects:
            mask = _shape_mask(rng, item, width, height)
            _paint_texture(rng, image, mask, item.kind, cfg.scale)
            object_masks.append(mask)
        gaze = _observe(rng, cfg, objects, distractors)
        fixations, durations, n_outside = clean_gaze(gaze, height, width, drop_outside=True)
        gfdm = None
        if cfg.gfdm == "fixations":
            points = torch.cat(fixations)
            if len(points) == 0:  # every fixation fell outside: look at the first object
                points = torch.tensor([[objects[0].cx, objects[0].cy]], dtype=torch.float32)
            gfdm = build_gfdm(points, height, width, cfg.effective_sigma, cfg.collapse)
        labels = sorted({item.kind for item in objects})
        no_masks = np.zeros((0, height, width), bool)
        extras = {
            "masks": torch.from_numpy(np.stack(object_masks)),
            "boxes": _boxes(object_masks),
            "object_labels": torch.tensor([item.kind for item in objects], dtype=torch.long),
            "distractor_masks": torch.from_numpy(
                np.stack(distractor_masks) if distractor_masks else no_masks
            ),
            "distractor_boxes": _boxes(distractor_masks),
            "index": i,
        }
        return Sample(
            image_id=self.image_id(i),
            image=torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1))),
            fixations=fixations,
            gfdm=gfdm,
            labels=labels,
            class_names=[self.class_names[k] for k in labels],
            n_classes_present=len(labels),
            category=None,
            split=self._split_of.get(i),
            durations=durations,
            n_outside=n_outside,
            extras=extras,
        )


# --------------------------------------------------------------------- drawing helpers
def _random_colour(rng: np.random.Generator, saturation: tuple[float, float],
                   value: tuple[float, float]) -> np.ndarray:
    """An RGB colour (floats in [0, 1]) from a random hue and the given S and V ranges."""
    h = rng.random()
    s = rng.uniform(*saturation)
    v = rng.uniform(*value)
    k = (np.array([5.0, 3.0, 1.0]) + h * 6.0) % 6.0
    return v - v * s * np.clip(np.minimum(k, 4.0 - k), 0.0, 1.0)


def _smooth_noise(rng: np.random.Generator, height: int, width: int, cells: int) -> np.ndarray:
    """Low-frequency noise in [-1, 1]: a coarse random grid upsampled bilinearly."""
    out = np.empty((height, width, 3), np.float32)
    for c in range(3):
        grid = rng.uniform(-1.0, 1.0, size=(cells, cells)).astype(np.float32)
        out[..., c] = np.asarray(
            Image.fromarray(grid, mode="F").resize((width, height), Image.BILINEAR)
        )
    return out


def _background(rng: np.random.Generator, cfg: SyntheticConfig) -> np.ndarray:
    height, width = cfg.height, cfg.width
    base = _random_colour(rng, (0.1, 0.5), (0.35, 0.75))
    img = base[None, None, :] + 0.18 * _smooth_noise(rng, height, width, 6)
    img = img + rng.normal(0.0, 0.03, size=img.shape)
    img8 = (np.clip(img, 0.0, 1.0) * 255).astype(np.uint8)
    canvas = Image.fromarray(img8)
    draw = ImageDraw.Draw(canvas)
    s = cfg.scale
    for _ in range(cfg.clutter):
        colour = tuple(int(v) for v in np.clip(
            (base + rng.uniform(-0.3, 0.3, 3)) * 255, 0, 255))
        if rng.random() < 0.7:  # line segments of random length and direction
            x0, y0 = rng.uniform(0, width), rng.uniform(0, height)
            length, angle = rng.uniform(8, 40) * s, rng.uniform(0, math.pi)
            x1, y1 = x0 + length * math.cos(angle), y0 + length * math.sin(angle)
            draw.line([(x0, y0), (x1, y1)], fill=colour, width=max(1, int(rng.integers(1, 3) * s)))
        else:  # faint blobs
            r = rng.uniform(3, 9) * s
            x0, y0 = rng.uniform(0, width), rng.uniform(0, height)
            draw.ellipse([x0 - r, y0 - r * rng.uniform(0.5, 1), x0 + r, y0 + r], fill=colour)
    return np.asarray(canvas).copy()


def _layout(rng: np.random.Generator, cfg: SyntheticConfig) -> tuple[list[_Item], list[_Item]]:
    """Choose classes and place objects and distractors without overlap."""
    if cfg.mode == "single":
        cls = int(rng.integers(cfg.n_classes))
        kinds = [cls] * int(rng.integers(1, cfg.max_objects + 1))
    else:
        k = int(rng.integers(1, min(cfg.max_classes, cfg.n_classes) + 1))
        classes = [int(c) for c in rng.choice(cfg.n_classes, size=k, replace=False)]
        m = int(rng.integers(k, max(k, cfg.max_objects) + 1))
        kinds = classes + [int(c) for c in rng.choice(classes, size=m - k)]
    n_distractors = int(rng.integers(0, cfg.max_distractors + 1))
    side = min(cfg.height, cfg.width)
    wanted = [(kind, rng.uniform(0.08, 0.14) * side) for kind in kinds]
    wanted += [(-1, rng.uniform(0.07, 0.12) * side) for _ in range(n_distractors)]
    placed: list[_Item] = []
    for kind, r in wanted:
        for _ in range(100):
            cx = rng.uniform(r + 1, cfg.width - r - 1)
            cy = rng.uniform(r + 1, cfg.height - r - 1)
            if all(math.hypot(cx - p.cx, cy - p.cy) > r + p.r + 2 for p in placed):
                placed.append(_Item(kind, cx, cy, r))
                break
        # An item that finds no free room is left out; labels come from placed objects only.
    objects = [p for p in placed if p.kind >= 0]
    return objects, [p for p in placed if p.kind < 0]


def _polygon(cx: float, cy: float, radii: np.ndarray, angles: np.ndarray) -> list[tuple]:
    return [(cx + r * math.cos(a), cy + r * math.sin(a)) for r, a in zip(radii, angles)]


def _shape_mask(rng: np.random.Generator, item: _Item, width: int, height: int) -> np.ndarray:
    mask = Image.new("L", (width, height), 0)
    draw = ImageDraw.Draw(mask)
    cx, cy, r = item.cx, item.cy, item.r
    rot = rng.uniform(0, 2 * math.pi)
    name = CLASS_NAMES[item.kind]
    if name in ("circle", "ring"):
        draw.ellipse([cx - r, cy - r, cx + r, cy + r], fill=255)
        if name == "ring":
            q = 0.5 * r
            draw.ellipse([cx - q, cy - q, cx + q, cy + q], fill=0)
    elif name == "square":
        angles = rot + np.arange(4) * math.pi / 2
        draw.polygon(_polygon(cx, cy, np.full(4, r * 0.9), angles), fill=255)
    elif name == "triangle":
        angles = rot + np.arange(3) * 2 * math.pi / 3
        draw.polygon(_polygon(cx, cy, np.full(3, r), angles), fill=255)
    elif name == "star":
        angles = rot + np.arange(10) * math.pi / 5
        radii = np.where(np.arange(10) % 2 == 0, r, 0.45 * r)
        draw.polygon(_polygon(cx, cy, radii, angles), fill=255)
    elif name == "cross":
        a = 0.33 * r  # half arm width
        pts = [(-a, -r), (a, -r), (a, -a), (r, -a), (r, a), (a, a), (a, r), (-a, r), (-a, a),
               (-r, a), (-r, -a), (-a, -a)]
        c, s = math.cos(rot), math.sin(rot)
        draw.polygon([(cx + c * x - s * y, cy + s * x + c * y) for x, y in pts], fill=255)
    return np.asarray(mask) > 0


def _distractor_mask(rng: np.random.Generator, item: _Item, width: int, height: int) -> np.ndarray:
    mask = Image.new("L", (width, height), 0)
    k = int(rng.integers(5, 9))
    angles = np.sort(rng.uniform(0, 2 * math.pi, size=k))
    radii = rng.uniform(0.55, 1.0, size=k) * item.r
    ImageDraw.Draw(mask).polygon(_polygon(item.cx, item.cy, radii, angles), fill=255)
    return np.asarray(mask) > 0


def _texture(kind: int, height: int, width: int, scale: float) -> np.ndarray:
    """Binary class texture on the image grid (image frame, so orientation is a class cue)."""
    period = max(2, int(round(4 * scale)))
    y, x = np.mgrid[0:height, 0:width]
    name = _TEXTURES[kind]
    if name == "hstripes":
        return (y // period) % 2 == 0
    if name == "vstripes":
        return (x // period) % 2 == 0
    if name == "checker":
        return ((x // period) + (y // period)) % 2 == 0
    if name == "diag":
        return ((x + y) // period) % 2 == 0
    if name == "antidiag":
        return ((x - y) // period) % 2 == 0
    # dots on a square lattice
    cell = 2 * period
    dx = (x % cell) - cell / 2 + 0.5
    dy = (y % cell) - cell / 2 + 0.5
    return dx * dx + dy * dy <= (0.3 * cell) ** 2


def _paint_texture(rng: np.random.Generator, image: np.ndarray, mask: np.ndarray, kind: int,
                   scale: float) -> None:
    bright = _random_colour(rng, (0.5, 1.0), (0.8, 1.0))
    dark = bright * rng.uniform(0.1, 0.3)
    pattern = _texture(kind, image.shape[0], image.shape[1], scale)
    colours = np.where(pattern[..., None], bright, dark)
    image[mask] = (colours[mask] * 255).astype(np.uint8)


def _paint_solid(rng: np.random.Generator, image: np.ndarray, mask: np.ndarray) -> None:
    colour = _random_colour(rng, (0.4, 1.0), (0.5, 1.0))
    shade = colour[None, :] * rng.uniform(0.85, 1.0, size=(int(mask.sum()), 1))
    image[mask] = (np.clip(shade, 0, 1) * 255).astype(np.uint8)


def _boxes(masks: Sequence[np.ndarray]) -> torch.Tensor:
    """``(K, 4)`` float boxes ``(x0, y0, x1, y1)``, inclusive pixel bounds of each mask."""
    out = torch.zeros((len(masks), 4), dtype=torch.float32)
    for k, mask in enumerate(masks):
        ys, xs = np.nonzero(mask)
        if len(xs):
            out[k] = torch.tensor([xs.min(), ys.min(), xs.max(), ys.max()], dtype=torch.float32)
    return out


def _observe(rng: np.random.Generator, cfg: SyntheticConfig, objects: list[_Item],
             distractors: list[_Item]) -> Gaze:
    """Simulated observers: object-driven fixations with centre bias, distractors and noise."""
    lo, hi = cfg.fixations_per_observer
    noise = cfg.noise * cfg.scale
    centre = np.array([(cfg.width - 1) / 2, (cfg.height - 1) / 2])
    spread = 0.2 * min(cfg.height, cfg.width)
    observers, durations = [], []
    for _ in range(cfg.n_observers):
        n = int(rng.integers(lo, hi + 1))
        points = np.empty((n, 2))
        for f in range(n):
            u = rng.random()
            if u < cfg.p_centre:
                points[f] = centre + rng.normal(0.0, spread, 2)
                continue
            pool = distractors if (distractors and u < cfg.p_centre + cfg.p_distractor) else objects
            item = pool[int(rng.integers(len(pool)))]
            points[f] = (item.cx, item.cy) + rng.normal(0.0, 0.35 * item.r, 2)
        points += rng.normal(0.0, noise, points.shape)
        observers.append(points)
        durations.append(80.0 + rng.gamma(4.0, 50.0, size=n))  # ms, mean ~280
    return Gaze(observers=observers, durations=durations)
