"""The scenes and simulated observers of the synthetic gaze benchmark
(:mod:`mlfem.datasets.synthetic`, whose docstring describes them): its parameters
(:class:`SyntheticConfig`), the drawing of backgrounds, objects and distractors, and the
observers' fixations.  Every function draws from the ``rng`` it is given, in a fixed order, so
a sample depends only on ``(seed, index)``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image, ImageDraw

from .schema import Gaze

__all__ = ["CLASS_NAMES", "Scene", "SyntheticConfig", "draw_scene"]

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


@dataclass
class Scene:
    """One drawn sample before it becomes a :class:`~mlfem.datasets.Sample`."""

    image: np.ndarray  # (H, W, 3) uint8
    objects: list[_Item]
    distractors: list[_Item]
    object_masks: list[np.ndarray]
    distractor_masks: list[np.ndarray]
    gaze: Gaze

    def extras(self, index: int) -> dict:
        """``sample.extras``: the objects' and distractors' masks, boxes and labels."""
        height, width = self.image.shape[:2]
        no_masks = np.zeros((0, height, width), bool)
        return {
            "masks": torch.from_numpy(np.stack(self.object_masks)),
            "boxes": _boxes(self.object_masks),
            "object_labels": torch.tensor([item.kind for item in self.objects], dtype=torch.long),
            "distractor_masks": torch.from_numpy(
                np.stack(self.distractor_masks) if self.distractor_masks else no_masks
            ),
            "distractor_boxes": _boxes(self.distractor_masks),
            "index": index,
        }


def draw_scene(rng: np.random.Generator, cfg: SyntheticConfig) -> Scene:
    """Background, objects and distractors, then the observers' fixations, drawn from ``rng``
    in this order (the order fixes every sample of a seed: do not change it)."""
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
    return Scene(image, objects, distractors, object_masks, distractor_masks, gaze)


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
