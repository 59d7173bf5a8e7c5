"""Every observer's blurred fixations on one image, built once and kept on one device, and
the two per-observer protocols scored from them: the human ceiling (the other observers'
GFDM against each observer) and any maps (methods, the centre bias) against each observer.

Why a class: an evaluation scores an image's maps against its O observers and computes the
ceiling under several metrics. Building the observers' GFDMs once per image (not once per
metric), deriving "everyone else" as the total minus one observer (the blur is linear: each
observer is blurred once, as a sum of outer products of the blur matrices' columns at the
observer's fixated pixels), and scoring PCC, SIM, NSS and AUC-Judd without an (M x O)
stack of full-size maps is what makes the gaze side of ``mlfem evaluate`` cheap:

* PCC: one (M, N) x (N, O) product of the centred maps with the observers' blurred counts
  (PCC does not depend on the targets' scale, so the unnormalised blur serves);
* NSS: the z-scored maps read at the observers' fixated pixels only;
* AUC-Judd: each map sorted once for all observers (not once per observer);
* SIM: the only pairwise full-size pass (``min`` of two distributions), one map at a time
  against all observers, into one reused buffer.

These are the metric functions' own definitions, computed in another order: the values agree
with :func:`mlfem.metrics.compute` on the full-size maps up to rounding (float64 here where
the metric functions ran in the maps' dtype; docs/gaze.md gives the measured differences).
Any other metric is computed with the metric functions on full-size maps, built lazily.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from mlfem.gaze._observer_scores import CHUNK, ceiling_fast, cross_fast
from mlfem.gaze.blur import _MATRIX_MAX_HW_SUM, _blur_matrix, _check_padding, kernel_radius
from mlfem.gaze.density import blur_counts, density_from_counts
from mlfem.gaze.fixations import Fixations

__all__ = ["FAST_METRICS", "ObserverMaps"]

#: Metrics scored without full-size per-pair maps (every other metric falls back to them).
FAST_METRICS: tuple[str, ...] = ("pcc", "sim", "nss", "auc_judd")


class ObserverMaps:
    """The O observers of one image (those with a fixation, in id order) on ``device``.

    ``blurred`` (O, H, W): each observer's fixation counts (binary with ``collapse``) blurred
    with ``sigma`` (``padding``/``truncate`` as :func:`mlfem.gaze.gfdm`), clamped at 0, not
    normalised; ``sums`` (O,) their totals, so that ``blurred[o] / sums[o]`` is observer
    ``o``'s GFDM. Fixation counts (duplicates kept) are held as the fixated pixels:
    ``pixel`` (flat index), ``owner`` (observer index) and ``weight`` (count), one entry per
    observer and pixel. ``out``, a tensor of the shape and dtype of ``blurred`` on ``device``,
    is written into instead of a new one (the evaluation reuses it from image to image).
    """

    def __init__(
        self, fixations: Fixations, sigma: float, *, collapse: bool = False,
        padding: str = "reflect", truncate: float = 4.0, dtype: torch.dtype = torch.float64,
        device: torch.device | str | None = None, out: torch.Tensor | None = None,
    ) -> None:
        self.padding = _check_padding(padding)
        self.sigma, self.truncate, self.collapse = float(sigma), float(truncate), bool(collapse)
        self.device = torch.device(device) if device is not None else torch.device("cpu")
        self.dtype = dtype
        self.observers = fixations.observer_ids
        self.name = fixations.name
        height, width = self.height, self.width = fixations.height, fixations.width
        n = height * width
        # Fixated pixels per observer, as fixation_counts lands them (floor(x + 0.5)).
        col = np.floor(fixations.xs + 0.5)
        row = np.floor(fixations.ys + 0.5)
        inside = (col >= 0) & (col < width) & (row >= 0) & (row < height)
        owner = np.searchsorted(self.observers, fixations.observers)
        key = torch.as_tensor((owner * n + row * width + col)[inside].astype(np.int64))
        keys, counts = torch.unique(key, sorted=True, return_counts=True)
        keys, counts = keys.to(self.device), counts.to(self.device)
        self.owner, self.pixel = keys // n, keys % n
        self.weight = counts.to(torch.float64)
        n_obs = len(self.observers)
        self.n_fixated = torch.bincount(self.owner, minlength=n_obs)  # distinct pixels
        self.n_fix = torch.zeros(n_obs, dtype=torch.float64, device=self.device).index_add_(
            0, self.owner, self.weight)
        # Slot of each fixated pixel in its observer's list (entries are sorted by observer).
        first = torch.cumsum(self.n_fixated, 0) - self.n_fixated
        self.slot = torch.arange(keys.numel(), device=self.device) - first[self.owner]
        self.blurred = self._blur(out)
        self.sums = self.blurred.sum(dim=(1, 2), dtype=torch.float64)
        self._dense: dict[str, torch.Tensor] = {}
        self._moments: tuple[torch.Tensor, torch.Tensor] | None = None

    @property
    def n_observers(self) -> int:
        return len(self.observers)

    # ------------------------------------------------------------------ construction
    def _blur(self, out: torch.Tensor | None) -> torch.Tensor:
        """(O, H, W) blurred counts: sum over an observer's fixated pixels of the count times
        the outer product of the blur matrices' columns (as :func:`blur_counts`)."""
        n_obs, height, width = self.n_observers, self.height, self.width
        shape = (n_obs, height, width)
        if out is None or tuple(out.shape) != shape or out.dtype != self.dtype or out.device != self.device:
            out = torch.empty(shape, dtype=self.dtype, device=self.device)
        k = int(self.n_fixated.max()) if n_obs and self.pixel.numel() else 0
        weight = torch.ones_like(self.weight) if self.collapse else self.weight
        dense_cost = height + width if height + width <= _MATRIX_MAX_HW_SUM else 256
        # Where each observer's blurred map can be nonzero: its fixations' bounding box grown
        # by the kernel's radius (the blur matrices are banded). Scores that only need those
        # pixels read just the box; the full image where the dense blur ran instead.
        self.boxes = [(0, height, 0, width)] * n_obs
        if k == 0:
            return out.zero_()
        if 2 * k >= dense_cost:  # many fixated pixels: the dense blur is cheaper
            counts = torch.zeros(n_obs, height * width, dtype=self.dtype, device=self.device)
            counts[self.owner, self.pixel] = weight.to(self.dtype)
            out.copy_(blur_counts(counts.view(shape), self.sigma, padding=self.padding,
                                  truncate=self.truncate))
            return out.clamp_min_(0)
        key = (self.sigma, self.truncate, self.padding, self.dtype, str(self.device))
        k_h, k_w = _blur_matrix(height, *key), _blur_matrix(width, *key)
        rows = torch.zeros(n_obs, k, dtype=torch.int64, device=self.device)
        cols = torch.zeros_like(rows)
        weights = torch.zeros(n_obs, k, dtype=self.dtype, device=self.device)  # padding: 0
        rows[self.owner, self.slot] = self.pixel // width
        cols[self.owner, self.slot] = self.pixel % width
        weights[self.owner, self.slot] = weight.to(self.dtype)
        self.boxes = _support_boxes(self.owner, self.pixel, n_obs, height, width,
                                    kernel_radius(self.sigma, self.truncate))
        left = k_h.T[rows] * weights.unsqueeze(-1)  # (O, k, H)
        torch.bmm(left.transpose(1, 2), k_w.T[cols], out=out)
        return out.clamp_min_(0)

    def _flat(self) -> torch.Tensor:
        return self.blurred.view(self.n_observers, -1)

    def moments(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(O,) float64 sum of squared deviations of each observer's blurred map from its
        mean, and (O,) whether the map is constant (PCC's denominators); computed once."""
        if self._moments is None:
            from mlfem.metrics._common import row_dot

            flat = self._flat()
            squares = []
            for first in range(0, self.n_observers, CHUNK):  # no (O, H, W) temporary
                rows = slice(first, first + CHUNK)
                centred = flat[rows].to(torch.float64) - (self.sums[rows] / flat.shape[1]).unsqueeze(1)
                squares.append(row_dot(centred, centred))
            squares = torch.cat(squares) if squares else self.sums.new_zeros(0)
            self._moments = (squares, flat.amax(dim=1) == flat.amin(dim=1))
        return self._moments

    # ------------------------------------------------------------------ full-size maps
    @property
    def counts(self) -> torch.Tensor:
        """(O, H, W) fixation counts, duplicates kept (built on first use)."""
        if "counts" not in self._dense:
            counts = torch.zeros(self.n_observers, self.height * self.width, dtype=self.dtype,
                                 device=self.device)
            counts[self.owner, self.pixel] = self.weight.to(self.dtype)
            self._dense["counts"] = counts.view(self.n_observers, self.height, self.width)
        return self._dense["counts"]

    @property
    def own(self) -> torch.Tensor:
        """(O, H, W) each observer's GFDM (NaN where an observer has no fixation inside)."""
        if "own" not in self._dense:
            self._dense["own"] = self.blurred / self.sums.to(self.dtype).view(-1, 1, 1)
        return self._dense["own"]

    @property
    def others(self) -> torch.Tensor:
        """(O, H, W) GFDM of every observer but ``o``, for each ``o``."""
        if "others" not in self._dense:
            if self.collapse:  # union of the others' pixels, not linear: blurred as such
                union = (self.counts.sum(0, keepdim=True) - self.counts) > 0
                rest = density_from_counts(union.to(self.dtype), self.sigma, padding=self.padding,
                                           truncate=self.truncate)
            else:
                rest = (self.blurred.sum(0, keepdim=True) - self.blurred).clamp_min(0)
                rest = rest / rest.sum(dim=(1, 2), keepdim=True)
            self._dense["others"] = rest
        return self._dense["others"]

    # ------------------------------------------------------------------ scores
    def ceiling_scores(
        self, metrics: Sequence[str], *, seed: int | None = 0, baseline: torch.Tensor | str = "centre",
        other_fix: torch.Tensor | None = None,
    ) -> dict[str, torch.Tensor]:
        """Leave-one-observer-out scores, (O,) float64 per metric (NaN where undefined).
        ``other_fix`` (H, W): the other images' fixation counts, needed by ``sauc``."""
        from mlfem.metrics.table import compute, resolve

        names = [_checked(resolve(m).name, other_fix) for m in metrics]
        fast = [m for m in names if m in FAST_METRICS]
        out = ceiling_fast(self, fast) if fast else {}
        for name in names:
            if name not in out:
                out[name] = compute(name, self.others, gt=self.own, fix=self.counts, seed=seed,
                                    baseline=baseline, other_fix=other_fix).to(torch.float64)
        return {name: out[name] for name in names}

    def cross_scores(
        self, preds: torch.Tensor, metrics: Sequence[str], *, seed: int | None = 0,
        baseline: torch.Tensor | str = "centre", other_fix: torch.Tensor | None = None,
    ) -> dict[str, torch.Tensor]:
        """Each of the M maps ``preds`` (M, H, W) against each observer: (M, O) float64 per
        metric (the target is the observer's GFDM for distribution metrics, their fixation
        counts for location metrics; NaN where undefined). ``other_fix`` as in
        :meth:`ceiling_scores`."""
        from mlfem.metrics._common import match_size
        from mlfem.metrics.table import compute, resolve

        names = [_checked(resolve(m).name, other_fix) for m in metrics]
        preds = preds.to(self.device)
        if not torch.is_floating_point(preds):
            preds = preds.float()
        preds, _ = match_size(preds, (self.height, self.width))
        finite = bool(torch.isfinite(preds.sum(dtype=torch.float64)))
        # Maps with NaN or inf take the metric functions' own route (which defines them).
        fast = [m for m in names if m in FAST_METRICS] if finite else []
        out = cross_fast(self, preds, fast) if fast else {}
        rest = [m for m in names if m not in out]
        if rest:
            n_maps, n_obs = preds.shape[0], self.n_observers
            repeated = preds.repeat_interleave(n_obs, dim=0)  # map i against observers 0..O-1
            own = self.own.to(preds.dtype).repeat(n_maps, 1, 1)
            counts = self.counts.to(preds.dtype).repeat(n_maps, 1, 1)
            for name in rest:
                values = compute(name, repeated, gt=own, fix=counts, seed=seed, baseline=baseline,
                                 other_fix=other_fix)
                out[name] = values.to(torch.float64).reshape(n_maps, n_obs)
        return {name: out[name] for name in names}


def _support_boxes(
    owner: torch.Tensor, pixel: torch.Tensor, n_obs: int, height: int, width: int, radius: int
) -> list[tuple[int, int, int, int]]:
    """(first row, end row, first column, end column) per observer: its fixated pixels'
    bounding box grown by ``radius`` and clipped to the image (empty without a fixation)."""
    boxes = [(0, 0, 0, 0)] * n_obs
    rows, cols = (pixel // width).tolist(), (pixel % width).tolist()
    extent: dict[int, list[int]] = {}
    for o, r, c in zip(owner.tolist(), rows, cols):
        box = extent.setdefault(o, [r, r, c, c])
        box[0], box[1], box[2], box[3] = min(box[0], r), max(box[1], r), min(box[2], c), max(box[3], c)
    for o, (r0, r1, c0, c1) in extent.items():
        boxes[o] = (max(0, r0 - radius), min(height, r1 + radius + 1),
                    max(0, c0 - radius), min(width, c1 + radius + 1))
    return boxes


def _checked(name: str, other_fix: torch.Tensor | None) -> str:
    if name == "sauc" and other_fix is None:
        raise ValueError("sauc needs other images' fixations (other_fix=, an (H, W) count map)")
    return name

