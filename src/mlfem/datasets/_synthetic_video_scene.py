"""The clips and simulated observers of the synthetic video gaze benchmark
(:mod:`mlfem.datasets.synthetic_video`, whose docstring describes them): its parameters
(:class:`SyntheticVideoConfig`), the drawing of a clip, and the observers' gaze. Every function
draws from the ``rng`` it is given, in a fixed order, so a clip depends only on
``(seed, index)``. The static scene reuses the image benchmark's drawing helpers.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ._synthetic_scene import (
    CLASS_NAMES as SHAPE_NAMES,
    _background,
    _distractor_mask,
    _Item,
    _paint_solid,
    _paint_texture,
    _random_colour,
    _shape_mask,
    _texture,
)

__all__ = ["DIRECTIONS", "Clip", "SyntheticVideoConfig", "draw_clip"]

#: The class of a clip: the direction the target moves in (image axes: y grows downwards).
DIRECTIONS = ("right", "left", "down", "up")
_UNIT = {"right": (1.0, 0.0), "left": (-1.0, 0.0), "down": (0.0, 1.0), "up": (0.0, -1.0)}


@dataclass(frozen=True)
class SyntheticVideoConfig:
    """Parameters of the synthetic video benchmark (see :mod:`mlfem.datasets.synthetic_video`).

    ``travel`` is how far the target moves over the whole clip, as a fraction of the frame's
    smaller side (so the motion is as visible at any size and clip length); the pixel
    quantities ``wobble`` and ``gaze_noise`` are at the 64 px reference size and scale with the
    frame size; ``noise`` is a fraction of 255; times are in frames.
    """

    n: int = 500
    seed: int = 0
    frames: int = 16
    size: int | tuple[int, int] = 64
    fps: float = 8.0
    n_decoys: int = 2
    max_distractors: int = 2
    moving_distractors: int = 0
    clutter: int = 10
    travel: tuple[float, float] = (0.3, 0.55)
    wobble: float = 1.0
    noise: float = 0.03
    n_observers: int = 8
    reaction_lag: tuple[int, int] = (2, 5)
    pursuit_lag: tuple[int, int] = (0, 1)
    p_glance: float = 0.04
    p_lost: float = 0.02
    gaze_noise: float = 1.0
    sigma: float | None = None
    temporal_sigma: float = 0.0
    gfdm: str = "fixations"

    def __post_init__(self) -> None:
        if self.n < 0 or self.seed < 0:
            raise ValueError("n and seed must be >= 0")
        if self.frames < 2:
            raise ValueError(f"frames must be >= 2 (motion needs two frames), got {self.frames}")
        if min(self.height, self.width) < 32:
            raise ValueError("frames must be at least 32x32 pixels")
        if self.n_decoys < 0 or self.max_distractors < 0 or self.moving_distractors < 0:
            raise ValueError("n_decoys, max_distractors and moving_distractors must be >= 0")
        if not 0 < self.travel[0] <= self.travel[1]:
            raise ValueError(f"travel must be (low, high) with 0 < low <= high, got {self.travel}")
        if self.n_observers < 1:
            raise ValueError("n_observers must be >= 1")
        for name in ("reaction_lag", "pursuit_lag"):
            lo, hi = getattr(self, name)
            if not 0 <= lo <= hi:
                raise ValueError(f"{name} must be (low, high) with 0 <= low <= high")
        if not (0 <= self.p_glance <= 1 and 0 <= self.p_lost < 1):
            raise ValueError("p_glance must be in [0, 1] and p_lost in [0, 1)")
        if self.gfdm not in ("fixations", "none"):
            raise ValueError("gfdm must be 'fixations' or 'none' (there are no shipped maps)")
        if self.sigma is not None and not self.sigma > 0:
            raise ValueError("sigma must be > 0")
        if not (self.temporal_sigma >= 0 and self.fps > 0):
            raise ValueError("temporal_sigma must be >= 0 and fps > 0")

    @property
    def height(self) -> int:
        return self.size if isinstance(self.size, int) else int(self.size[0])

    @property
    def width(self) -> int:
        return self.size if isinstance(self.size, int) else int(self.size[1])

    @property
    def scale(self) -> float:
        """Frame size relative to the 64 px reference of the pixel parameters. The image
        benchmark's background helpers read it as relative to 128 px: at 64 px the clutter
        (lines, blobs) is drawn at its 128 px size, so it is twice as dense relative to the
        frame, which is the clutter wanted here."""
        return min(self.height, self.width) / 64.0

    @property
    def effective_sigma(self) -> float:
        """The GFDM sigma in pixels: ``sigma``, or 5 % of the frame's larger side (3.2 px at
        64 px, the image benchmark's rule)."""
        return self.sigma if self.sigma is not None else 0.05 * max(self.height, self.width)


@dataclass
class Clip:
    """One drawn clip before it becomes a :class:`~mlfem.datasets.Sample`."""

    frames: np.ndarray  # (T, H, W, 3) uint8
    label: int  # index into DIRECTIONS
    shape: int  # the target's shape, index into the image benchmark's CLASS_NAMES
    centres: np.ndarray  # (T, 2) float: the target's drawn centre (x, y) per frame
    radius: float
    masks: np.ndarray  # (T, H, W) bool: the target per frame
    static_items: list[_Item]  # decoys and distractors (what observers glance at)
    gaze: list[np.ndarray]  # per observer, (N, 3) rows (frame, x, y)


def draw_clip(rng: np.random.Generator, cfg: SyntheticVideoConfig) -> Clip:
    """Background, static decoys and distractors, the target's path, the frames, then the
    observers' gaze, drawn from ``rng`` in this order (it fixes every clip of a seed)."""
    height, width, frames = cfg.height, cfg.width, cfg.frames
    background = _background(rng, cfg)  # type: ignore[arg-type]  # duck-typed config
    label = int(rng.integers(len(DIRECTIONS)))
    shape = int(rng.integers(len(SHAPE_NAMES)))
    side = min(height, width)
    radius = rng.uniform(0.10, 0.15) * side
    path = _path(rng, cfg, label, radius)
    static = _place_static(rng, cfg, path, radius)
    for item in static:  # decoys: textured shapes that do not move; distractors: solid blobs
        if item.kind >= 0:
            # The target's texture period (about half the radius): no single-frame cue
            # tells the target from a decoy.
            _paint_texture(rng, background, _shape_mask(rng, item, width, height), item.kind,
                           max(0.5, item.r / 8))
        else:
            _paint_solid(rng, background, _distractor_mask(rng, item, width, height))
    patch, patch_mask = _target_patch(rng, cfg, shape, radius)
    movers = [_moving_distractor(rng, cfg) for _ in range(cfg.moving_distractors)]
    clip = np.empty((frames, height, width, 3), np.uint8)
    masks = np.zeros((frames, height, width), bool)
    centres = np.empty((frames, 2))
    for k in range(frames):
        frame = background.copy()
        for blob, blob_mask, start, velocity in movers:
            _paste(frame, None, blob, blob_mask, start + k * velocity)
        centres[k] = _paste(frame, masks[k], patch, patch_mask, path[k])
        noisy = frame + rng.normal(0.0, cfg.noise * 255, size=frame.shape)
        clip[k] = np.clip(noisy, 0, 255).astype(np.uint8)
    gaze = _observe(rng, cfg, centres, radius, static)
    return Clip(clip, label, shape, centres, radius, masks, static, gaze)


def _path(rng: np.random.Generator, cfg: SyntheticVideoConfig, label: int,
          radius: float) -> np.ndarray:
    """(T, 2) target centres: a straight run in the label's direction, with a small sinusoidal
    wobble across it, kept inside the frame."""
    frames, s = cfg.frames, cfg.scale
    margin = radius + 1 + cfg.wobble * s
    room = min(cfg.width, cfg.height) - 1 - 2 * margin  # the longest run that fits
    speed = min(rng.uniform(*cfg.travel) * min(cfg.height, cfg.width), room) / (frames - 1)
    ux, uy = _UNIT[DIRECTIONS[label]]
    amplitude = rng.uniform(0.0, cfg.wobble) * s
    period = rng.uniform(6.0, 14.0)
    phase = rng.uniform(0, 2 * math.pi)
    k = np.arange(frames, dtype=np.float64)
    along = speed * k
    across = amplitude * np.sin(2 * math.pi * k / period + phase)
    travel = along[-1]
    # Start so that the whole run stays inside the frame along the motion axis.
    lo_x, hi_x = margin, cfg.width - 1 - margin
    lo_y, hi_y = margin, cfg.height - 1 - margin
    if ux:
        start_x = rng.uniform(lo_x, max(lo_x, hi_x - travel)) if ux > 0 else \
            rng.uniform(min(hi_x, lo_x + travel), hi_x)
        start_y = rng.uniform(lo_y, hi_y)
    else:
        start_x = rng.uniform(lo_x, hi_x)
        start_y = rng.uniform(lo_y, max(lo_y, hi_y - travel)) if uy > 0 else \
            rng.uniform(min(hi_y, lo_y + travel), hi_y)
    xs = start_x + ux * along - uy * across
    ys = start_y + uy * along + ux * across
    return np.stack([np.clip(xs, radius, cfg.width - 1 - radius),
                     np.clip(ys, radius, cfg.height - 1 - radius)], axis=1)


def _segment_distance(px: float, py: float, path: np.ndarray) -> float:
    a, b = path[0], path[-1]
    ab = b - a
    t = 0.0 if not ab.any() else float(np.clip(np.dot((px, py) - a, ab) / np.dot(ab, ab), 0, 1))
    return float(np.hypot(*((px, py) - (a + t * ab))))


def _place_static(rng: np.random.Generator, cfg: SyntheticVideoConfig, path: np.ndarray,
                  radius: float) -> list[_Item]:
    """Decoys (textured shapes of random classes) and distractors, off the target's path."""
    side = min(cfg.height, cfg.width)
    wanted = [(int(rng.integers(len(SHAPE_NAMES))), rng.uniform(0.09, 0.13) * side)
              for _ in range(cfg.n_decoys)]
    n_distractors = int(rng.integers(0, cfg.max_distractors + 1))
    wanted += [(-1, rng.uniform(0.07, 0.11) * side) for _ in range(n_distractors)]
    placed: list[_Item] = []
    for kind, r in wanted:
        for _ in range(100):
            cx = rng.uniform(r + 1, cfg.width - r - 1)
            cy = rng.uniform(r + 1, cfg.height - r - 1)
            clear_of_path = _segment_distance(cx, cy, path) > r + radius + 2 + cfg.wobble
            if clear_of_path and all(math.hypot(cx - p.cx, cy - p.cy) > r + p.r + 2
                                     for p in placed):
                placed.append(_Item(kind, cx, cy, r))
                break
        # An item that finds no free room is left out (the clip is valid without it).
    return placed


def _target_patch(rng: np.random.Generator, cfg: SyntheticVideoConfig, shape: int,
                  radius: float) -> tuple[np.ndarray, np.ndarray]:
    """The target's textured appearance on a square patch; the texture moves with it. Its
    period is about half the radius: finer stripes moving a few pixels a frame would alias
    (a stripe pattern shifted by half its period just flips), blurring the motion cue."""
    half = int(math.ceil(radius)) + 1
    n = 2 * half + 1
    item = _Item(shape, float(half), float(half), radius)
    mask = _shape_mask(rng, item, n, n)
    bright = _random_colour(rng, (0.5, 1.0), (0.8, 1.0))
    dark = bright * rng.uniform(0.1, 0.3)
    pattern = _texture(shape, n, n, max(0.5, radius / 8))  # period round(radius / 2) px
    patch = (np.where(pattern[..., None], bright, dark) * 255).astype(np.uint8)
    return patch, mask


def _moving_distractor(rng: np.random.Generator, cfg: SyntheticVideoConfig) -> tuple:
    """A solid blob that drifts in a random direction (for harder variants)."""
    side = min(cfg.height, cfg.width)
    r = rng.uniform(0.07, 0.11) * side
    half = int(math.ceil(r)) + 1
    n = 2 * half + 1
    mask = _distractor_mask(rng, _Item(-1, float(half), float(half), r), n, n)
    blob = np.zeros((n, n, 3), np.uint8)
    _paint_solid(rng, blob, mask)
    start = np.array([rng.uniform(r, cfg.width - r), rng.uniform(r, cfg.height - r)])
    angle = rng.uniform(0, 2 * math.pi)
    side = min(cfg.height, cfg.width)
    speed = rng.uniform(*cfg.travel) * side / (cfg.frames - 1)
    velocity = speed * np.array([math.cos(angle), math.sin(angle)])
    return blob, mask, start, velocity


def _paste(frame: np.ndarray, out_mask: np.ndarray | None, patch: np.ndarray,
           patch_mask: np.ndarray, centre: np.ndarray) -> np.ndarray:
    """Paint ``patch`` where ``patch_mask`` is set, centred on the pixel nearest ``centre``
    (cropped at the frame's edges); returns the centre actually drawn."""
    height, width = frame.shape[:2]
    n = patch.shape[0]
    half = n // 2
    cx, cy = int(math.floor(centre[0] + 0.5)), int(math.floor(centre[1] + 0.5))
    x0, y0 = cx - half, cy - half
    fx0, fy0, fx1, fy1 = max(x0, 0), max(y0, 0), min(x0 + n, width), min(y0 + n, height)
    if fx0 >= fx1 or fy0 >= fy1:
        return np.array([cx, cy], dtype=np.float64)
    sub_mask = patch_mask[fy0 - y0:fy1 - y0, fx0 - x0:fx1 - x0]
    region = frame[fy0:fy1, fx0:fx1]
    region[sub_mask] = patch[fy0 - y0:fy1 - y0, fx0 - x0:fx1 - x0][sub_mask]
    if out_mask is not None:
        out_mask[fy0:fy1, fx0:fx1] |= sub_mask
    return np.array([cx, cy], dtype=np.float64)


def _observe(rng: np.random.Generator, cfg: SyntheticVideoConfig, centres: np.ndarray,
             radius: float, static: list[_Item]) -> list[np.ndarray]:
    """Simulated observers, one gaze sample per frame each (see the package docstring):
    a first fixation near the centre, a saccade to the target after a reaction lag, then
    pursuit a few frames behind it with a personal offset on the object (re-drawn by small
    corrective saccades), occasional glances at a static item, sample loss and tracker noise."""
    frames, s = cfg.frames, cfg.scale
    centre = np.array([(cfg.width - 1) / 2, (cfg.height - 1) / 2])
    spread = 0.15 * min(cfg.height, cfg.width)
    observers = []
    for _ in range(cfg.n_observers):
        start = centre + rng.normal(0.0, spread, 2)
        reaction = int(rng.integers(cfg.reaction_lag[0], cfg.reaction_lag[1] + 1))
        lag = int(rng.integers(cfg.pursuit_lag[0], cfg.pursuit_lag[1] + 1))
        offset = rng.normal(0.0, 0.3 * radius, 2)
        glance_left, glance_at = 0, start
        rows = []
        for k in range(frames):
            if rng.random() < 0.15:  # a small corrective saccade: a new spot on the object
                offset = rng.normal(0.0, 0.3 * radius, 2)
            if k < reaction:
                point = start
            elif glance_left > 0:
                point = glance_at
                glance_left -= 1
            elif static and rng.random() < cfg.p_glance:
                item = static[int(rng.integers(len(static)))]
                glance_at = np.array([item.cx, item.cy]) + rng.normal(0.0, 0.3 * item.r, 2)
                glance_left = int(rng.integers(1, 4))  # 2..4 frames with this one
                point = glance_at
            else:
                point = centres[max(k - lag, 0)] + offset
            point = point + rng.normal(0.0, cfg.gaze_noise * s, 2)
            if rng.random() >= cfg.p_lost:  # a lost sample (blink, tracker loss) has no row
                rows.append((float(k), float(point[0]), float(point[1])))
        observers.append(np.asarray(rows, dtype=np.float64).reshape(-1, 3))
    return observers

