"""The fast forms of PCC, SIM, NSS and AUC-Judd used by :class:`mlfem.gaze.ObserverMaps`
(see its module docstring): same definitions as :mod:`mlfem.metrics`, computed without full-size
temporaries per (map, observer) pair. Full-size temporaries are single rows (one observer's
map), reused, so that an evaluation does not allocate and page in hundreds of megabytes per
image (allocation churn was half of its time before)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch

from mlfem.metrics._common import is_constant, row_dot, sort_rows
from mlfem.metrics.distribution import _bring_to_unit_scale
from mlfem.metrics.location import _judd_curve, _suffix_counts

if TYPE_CHECKING:
    from mlfem.gaze.observer_maps import ObserverMaps

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
    dtype (as the metric), one map at a time against all observers into one buffer."""
    dtype = preds.dtype
    a = _bring_to_unit_scale(preds.clamp_min(0))
    a_sum = a.sum(dim=(1, 2))
    ok = a_sum > 0
    a = a / torch.where(ok, a_sum, torch.ones_like(a_sum)).view(-1, 1, 1)
    own = (maps.blurred / maps.sums.to(maps.blurred.dtype).view(-1, 1, 1)).to(dtype)
    buffer = torch.empty_like(own)
    sim = torch.stack([torch.minimum(a[i], own, out=buffer).sum(dim=(1, 2)) for i in range(a.shape[0])])
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


def ceiling_fast(maps: ObserverMaps, names: list[str]) -> dict[str, torch.Tensor]:
    """PCC, SIM, NSS, AUC-Judd (those in ``names``) of the leave-one-out GFDM against each
    observer: (O,) float64 each. Observer by observer, every temporary one reused row.

    The leave-one-out map is used unnormalised (the total minus the observer, clamped at 0):
    PCC, NSS and AUC-Judd do not depend on its scale, and SIM divides by the sums."""
    n_obs, n = maps.n_observers, maps.height * maps.width
    flat = maps.blurred.view(n_obs, n)
    out = {name: torch.full((n_obs,), _NAN, dtype=torch.float64, device=maps.device) for name in names}
    total = None if maps.collapse else flat.sum(dim=0)
    others = maps.others.view(n_obs, n) if maps.collapse else None
    rest, scratch = (torch.empty(n, dtype=flat.dtype, device=flat.device) for _ in range(2))
    own_squares, own_constant = maps.moments()
    ends = torch.cumsum(maps.n_fixated, 0).tolist()
    sums = maps.sums.tolist()
    for o in range(n_obs):
        start, end = ends[o] - int(maps.n_fixated[o]), ends[o]
        if others is not None:
            rest.copy_(others[o])
        else:
            torch.sub(total, flat[o], out=rest).clamp_min_(0)
        rest_sum = float(rest.sum())
        if not (sums[o] > 0 and rest_sum > 0):
            continue  # no fixation of o inside the image, or none of the others': undefined
        pixels, weight = maps.pixel[start:end], maps.weight[start:end].to(flat.dtype)
        if "sim" in out:
            # sum(min(r / R, b / B)) = sum(min(r * B / R, b)) / B
            torch.mul(rest, sums[o] / rest_sum, out=scratch)
            out["sim"][o] = (torch.minimum(scratch, flat[o], out=scratch).sum() / sums[o]).clamp(0.0, 1.0)
        if "auc_judd" in out and end > start:
            thr, order = rest[pixels].sort()
            reach = _reach(rest, thr)
            out["auc_judd"][o] = _judd_curve(thr[None], weight[order][None], maps.n_fixated[o : o + 1],
                                             reach[None], n)[0]
        if "pcc" in out or "nss" in out:
            if bool(rest.amax() == rest.amin()):
                continue  # a constant map: PCC and NSS undefined
            rest -= rest_sum / n
            rest_squares = torch.dot(rest, rest)
            if "pcc" in out and not bool(own_constant[o]):
                # sum(r~ * (b - mean b)) = r~ . b - mean(b) * sum(r~)
                dot = torch.dot(rest, flat[o]) - rest.sum() * (sums[o] / n)
                out["pcc"][o] = (dot / torch.sqrt(rest_squares * own_squares[o])).clamp(-1.0, 1.0)
            if "nss" in out and end > start:
                at_fix = torch.dot(rest[pixels], weight) / weight.sum()
                out["nss"][o] = at_fix / torch.sqrt(rest_squares / n)
    return out


def _reach(values: torch.Tensor, thr: torch.Tensor) -> torch.Tensor:
    """(k,) how many of ``values`` are >= each of the sorted thresholds ``thr``: each value's
    count of thresholds <= it, histogrammed (one pass; a sort of the values would be N log N)."""
    above = torch.searchsorted(thr, values, right=True)
    hist = torch.zeros(thr.numel() + 1, dtype=torch.int64, device=values.device)
    return _suffix_counts(hist.index_add_(0, above, torch.ones_like(above)))
