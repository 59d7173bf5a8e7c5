"""The fast forms of PCC, SIM, NSS and AUC-Judd used by :class:`mlfem.gaze.ObserverMaps`
(see its module docstring): same definitions as :mod:`mlfem.metrics`, computed without full-size
temporaries per (map, observer) pair. Full-size temporaries are single rows (one observer's
map), reused, so that an evaluation does not allocate and page in hundreds of megabytes per
image (allocation churn was half of its time before)."""

from __future__ import annotations

import math
from typing import Any

import torch

from mlfem.metrics._common import is_constant, row_dot, sort_rows
from mlfem.metrics.distribution import _bring_to_unit_scale
from mlfem.metrics.location import _judd_curve, _suffix_counts

# The maps are an mlfem.gaze.ObserverMaps (not imported: that module imports this one).
ObserverMaps = Any

__all__ = ["ceiling_fast", "cross_fast"]

_NAN = float("nan")


def cross_fast(maps: ObserverMaps, preds: torch.Tensor, names: list[str]) -> dict[str, torch.Tensor]:
    """PCC, SIM, NSS, AUC-Judd (those in ``names``) of the finite maps ``preds`` (M, H, W),
    at the observers' image size, against each observer: (M, O) float64 each."""
    n_maps, n_obs = preds.shape[0], maps.n_observers
    n = maps.height * maps.width
    flat = preds.reshape(n_maps, n)
    has_fixation = maps.sums > 0
    out: dict[str, torch.Tensor] = {}
    if "pcc" in names or "nss" in names:
        centred = flat.to(torch.float64, copy=True)
        centred -= centred.mean(dim=1, keepdim=True)
        squares = row_dot(centred, centred)
        constant = is_constant(flat)
        if "pcc" in names:
            blurred = maps.blurred.view(n_obs, n).to(torch.float64)
            # sum(p~ * (b - mean b)) = p~ . b - mean(b) * sum(p~): one matrix product.
            dots = centred @ blurred.T - centred.sum(dim=1, keepdim=True) * (maps.sums / n)
            target_squares, target_constant = maps.moments()
            den = torch.sqrt(squares.unsqueeze(1) * target_squares)
            r = (dots / torch.where(den > 0, den, torch.ones_like(den))).clamp(-1.0, 1.0)
            undefined = constant.unsqueeze(1) | (target_constant | ~has_fixation)
            out["pcc"] = torch.where(undefined, _NAN, r)
        if "nss" in names:
            std = torch.sqrt(squares / n)
            at_fix = torch.zeros(n_maps, n_obs, dtype=torch.float64, device=maps.device)
            at_fix.index_add_(1, maps.owner, centred[:, maps.pixel] * maps.weight)
            at_fix /= torch.where(maps.n_fix > 0, maps.n_fix, torch.ones_like(maps.n_fix))
            nss = at_fix / torch.where(constant, torch.ones_like(std), std).unsqueeze(1)
            out["nss"] = torch.where(constant.unsqueeze(1) | (maps.n_fix <= 0), _NAN, nss)
    if "sim" in names:
        out["sim"] = _cross_sim(maps, preds, has_fixation)
    if "auc_judd" in names:
        out["auc_judd"] = _cross_auc_judd(maps, flat)
    return out


def _cross_sim(maps: ObserverMaps, preds: torch.Tensor, has_fixation: torch.Tensor) -> torch.Tensor:
    """SIM: sum(min(p / P, q / Q)) of each map against each observer's GFDM, in the maps'
    dtype (as the metric), over the observer's support box only (``min`` is 0 elsewhere)."""
    dtype = preds.dtype
    a = _bring_to_unit_scale(preds.clamp_min(0))
    a_sum = a.sum(dim=(1, 2))
    ok = a_sum > 0
    a /= torch.where(ok, a_sum, torch.ones_like(a_sum)).view(-1, 1, 1)
    sim = torch.zeros(preds.shape[0], maps.n_observers, dtype=dtype, device=preds.device)
    sums = maps.sums.tolist()
    for o, (r0, r1, c0, c1) in enumerate(maps.boxes):
        if sums[o] > 0:
            own = (maps.blurred[o, r0:r1, c0:c1] / sums[o]).to(dtype)
            sim[:, o] = torch.minimum(a[:, r0:r1, c0:c1], own).sum(dim=(1, 2))
    ok = ok.unsqueeze(1) & has_fixation
    return torch.where(ok, sim.to(torch.float64).clamp(0.0, 1.0), _NAN)


def _cross_auc_judd(maps: ObserverMaps, flat: torch.Tensor) -> torch.Tensor:
    """AUC-Judd of each map (M, N) against each observer's counts, each map sorted once."""
    n_maps, n = flat.shape
    n_obs = maps.n_observers
    k = int(maps.n_fixated.max()) if maps.pixel.numel() else 0
    if k == 0:
        return torch.full((n_maps, n_obs), _NAN, dtype=torch.float64, device=flat.device)
    # Thresholds: the map's values at each observer's fixated pixels, padded with +inf.
    thr = torch.full((n_maps, n_obs, k), float("inf"), dtype=flat.dtype, device=flat.device)
    thr[:, maps.owner, maps.slot] = flat[:, maps.pixel]
    weight = torch.zeros(n_obs, k, dtype=flat.dtype, device=flat.device)
    weight[maps.owner, maps.slot] = maps.weight.to(flat.dtype)
    thr, order = thr.sort(dim=2)
    weight = weight.expand(n_maps, -1, -1).gather(2, order)
    ordered = sort_rows(flat)
    reach = torch.stack([n - torch.searchsorted(ordered[i], thr[i], right=False) for i in range(n_maps)])
    auc = _judd_curve(thr.reshape(-1, k), weight.reshape(-1, k), maps.n_fixated.repeat(n_maps),
                      reach.reshape(-1, k), n)
    return auc.reshape(n_maps, n_obs).to(torch.float64)


#: Observers scored together by the ceiling: (CHUNK, H, W) temporaries stay small enough
#: for the allocator to reuse them (no fresh pages per image), with few operations per image.
CHUNK = 4


def ceiling_fast(maps: ObserverMaps, names: list[str]) -> dict[str, torch.Tensor]:
    """PCC, SIM, NSS, AUC-Judd (those in ``names``) of the leave-one-out GFDM against each
    observer: (O,) float64 each."""
    if maps.collapse:
        return _ceiling_rows(maps, names)
    return _ceiling_linear(maps, names)


def _ceiling_linear(maps: ObserverMaps, names: list[str]) -> dict[str, torch.Tensor]:
    """:func:`ceiling_fast` where the others' map is the total T minus the observer's B_o.

    Outside B_o's support box the leave-one-out map is T itself, so only the box is read per
    observer: SIM sums over it; AUC-Judd counts the pixels >= each threshold as those of T
    (one sort of T per image) corrected inside the box; PCC and NSS come from the Gram matrix
    of the observers' maps (the others' variance and covariance are sums of its entries) and
    from the values at the fixated pixels. A leave-one-out map whose variance is below 1e-12
    of the total's is taken as constant (PCC and NSS undefined, as for the metrics)."""
    n_obs, n = maps.n_observers, maps.height * maps.width
    flat, grid = maps.blurred.view(n_obs, n), maps.blurred
    out = {name: torch.full((n_obs,), _NAN, dtype=torch.float64, device=maps.device) for name in names}
    total = flat.sum(dim=0)
    total_grid = total.view(maps.height, maps.width)
    sums = maps.sums.to(torch.float64)
    rest_sums = (sums.sum() - sums).tolist()
    if "pcc" in out or "nss" in out:
        wide = flat if flat.dtype == torch.float64 else flat.to(torch.float64)
        cov = wide @ wide.T - torch.outer(sums, sums) / n  # n x covariances of B_j, B_o
        with_total = cov.sum(dim=0)  # n cov(T, B_o)
        own_var = torch.diagonal(cov)
        rest_var = (cov.sum() - 2 * with_total + own_var).tolist()  # n var(T - B_o)
        rest_cov = (with_total - own_var).tolist()  # n cov(T - B_o, B_o)
        flat_limit = 1e-12 * abs(float(cov.sum()))
        own_squares, own_constant = maps.moments()
    ordered = sort_rows(total.unsqueeze(0))[0] if "auc_judd" in out else None
    ends = torch.cumsum(maps.n_fixated, 0).tolist()
    for o, (r0, r1, c0, c1) in enumerate(maps.boxes):
        start, end = ends[o] - int(maps.n_fixated[o]), ends[o]
        s_o, rest_sum = float(sums[o]), rest_sums[o]
        if not (s_o > 0 and rest_sum > 0 and end > start):
            continue  # no fixation of o inside the image, or none of the others': undefined
        own_box = grid[o, r0:r1, c0:c1]
        rest_box = (total_grid[r0:r1, c0:c1] - own_box).clamp_min_(0)
        pixels, weight = maps.pixel[start:end], maps.weight[start:end].to(torch.float64)
        at_pixels = (total[pixels] - flat[o, pixels]).clamp_min(0).to(torch.float64)
        if "sim" in out:
            # sum(min(r / R, b / B)) = sum(min(r * B / R, b)) / B; 0 outside b's box.
            both = torch.minimum(rest_box * (s_o / rest_sum), own_box)
            out["sim"][o] = (both.sum() / s_o).clamp(0.0, 1.0)
        if "auc_judd" in out:
            thr, order = at_pixels.to(flat.dtype).sort()
            above = n - torch.searchsorted(ordered, thr, right=False)  # pixels of T >= each
            inside = _reach(rest_box.reshape(1, -1), thr[None])[0] - _reach(
                total_grid[r0:r1, c0:c1].reshape(1, -1), thr[None])[0]
            out["auc_judd"][o] = _judd_curve(thr[None], weight.to(flat.dtype)[order][None],
                                             maps.n_fixated[o : o + 1], (above + inside)[None], n)[0]
        if ("pcc" in out or "nss" in out) and rest_var[o] > flat_limit:
            if "pcc" in out and not bool(own_constant[o]):
                r = rest_cov[o] / math.sqrt(rest_var[o] * float(own_squares[o]))
                out["pcc"][o] = min(1.0, max(-1.0, r))
            if "nss" in out:
                at_fix = float((at_pixels * weight).sum() / weight.sum()) - rest_sum / n
                out["nss"][o] = at_fix / math.sqrt(rest_var[o] / n)
    return out


def _ceiling_rows(maps: ObserverMaps, names: list[str]) -> dict[str, torch.Tensor]:
    """:func:`ceiling_fast` on full-size leave-one-out maps (``collapse``: the others' map is
    the blur of the union of their pixels, not a difference), :data:`CHUNK` observers at a time.

    The leave-one-out map is used unnormalised (the total minus the observer, clamped at 0):
    PCC, NSS and AUC-Judd do not depend on its scale, and SIM divides by the sums."""
    n_obs, n = maps.n_observers, maps.height * maps.width
    flat = maps.blurred.view(n_obs, n)
    out = {name: torch.full((n_obs,), _NAN, dtype=torch.float64, device=maps.device) for name in names}
    total = None if maps.collapse else flat.sum(dim=0)
    others = maps.others.view(n_obs, n) if maps.collapse else None
    own_squares, own_constant = maps.moments()
    # Each observer's fixated pixels as an (O, k) table (padding: pixel 0, weight 0).
    k = max(1, int(maps.n_fixated.max()) if maps.pixel.numel() else 0)
    pixels = torch.zeros(n_obs, k, dtype=torch.int64, device=maps.device)
    weights = torch.zeros(n_obs, k, dtype=flat.dtype, device=maps.device)
    used = torch.zeros(n_obs, k, dtype=torch.bool, device=maps.device)
    pixels[maps.owner, maps.slot] = maps.pixel
    weights[maps.owner, maps.slot] = maps.weight.to(flat.dtype)
    used[maps.owner, maps.slot] = True
    for first in range(0, n_obs, CHUNK):
        rows = slice(first, min(n_obs, first + CHUNK))
        own, own_sums = flat[rows], maps.sums[rows].to(flat.dtype)
        rest = others[rows].clone() if others is not None else (total - own).clamp_min_(0)
        rest_sums = rest.sum(dim=1)
        # No fixation of the observer inside the image, or none of the others': undefined.
        defined = (own_sums > 0) & (rest_sums > 0)
        scores = {}
        if "sim" in out:
            # sum(min(r / R, b / B)) = sum(min(r * B / R, b)) / B
            scratch = rest * (own_sums / rest_sums).unsqueeze(1)
            scores["sim"] = (torch.minimum(scratch, own, out=scratch).sum(dim=1) / own_sums).clamp(0.0, 1.0)
            del scratch
        if "auc_judd" in out:
            thr = torch.where(used[rows], rest.gather(1, pixels[rows]), float("inf"))
            thr, order = thr.sort(dim=1)
            reach = _reach(rest, thr)
            scores["auc_judd"] = _judd_curve(thr, weights[rows].gather(1, order), maps.n_fixated[rows],
                                             reach, n)
        if "pcc" in out or "nss" in out:
            constant = rest.amax(dim=1) == rest.amin(dim=1)
            rest -= (rest_sums / n).unsqueeze(1)
            squares = row_dot(rest, rest)
            if "pcc" in out:
                # sum(r~ * (b - mean b)) = r~ . b - mean(b) * sum(r~)
                dots = row_dot(rest, own) - rest.sum(dim=1) * (own_sums / n)
                den = torch.sqrt(squares * own_squares[rows])
                pcc = (dots / torch.where(den > 0, den, torch.ones_like(den))).clamp(-1.0, 1.0)
                scores["pcc"] = torch.where(constant | own_constant[rows], _NAN, pcc)
            if "nss" in out:
                n_fix = weights[rows].sum(dim=1)
                at_fix = (rest.gather(1, pixels[rows]) * weights[rows]).sum(dim=1)
                at_fix = at_fix / torch.where(n_fix > 0, n_fix, torch.ones_like(n_fix))
                nss = at_fix / torch.where(constant, torch.ones_like(squares), torch.sqrt(squares / n))
                scores["nss"] = torch.where(constant | (n_fix <= 0), _NAN, nss)
        for name, values in scores.items():
            out[name][rows] = torch.where(defined, values.to(torch.float64), _NAN)
    return out


def _reach(values: torch.Tensor, thr: torch.Tensor) -> torch.Tensor:
    """(b, k) how many of each row of ``values`` (b, N) are >= each of the row's sorted
    thresholds ``thr`` (b, k; +inf padding reaches nothing): each value's count of thresholds
    <= it, histogrammed per row (one pass; sorting the values would be N log N)."""
    b, k = thr.shape
    above = torch.searchsorted(thr, values, right=True)
    # index_add_ rather than bincount, which first scans the indices for their extremes.
    hist = torch.zeros(b, k + 1, dtype=torch.int64, device=values.device)
    return _suffix_counts(hist.scatter_add_(1, above, torch.ones_like(above)))
