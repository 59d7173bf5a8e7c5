"""Location-based metrics: the prediction is scored at the observers' fixations.

``fix`` is a fixation count map of the same shape as ``pred`` ((H, W) or (B, H, W)): the number
of fixations on each pixel, duplicates counted (build it with
:func:`mlfem.gaze.fixation_counts`). A prediction of another size is resized to ``fix``
bilinearly. Images without fixations, and constant maps where a metric is undefined, give NaN.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch

from mlfem.metrics._common import (
    EPS,
    as_batch,
    chunked,
    finish,
    is_constant,
    minmax,
    prepare,
    row_dot,
    sort_rows,
    sum_normalise,
    weighted_mean,
)
from mlfem.metrics.centre import centre_bias
from mlfem.metrics.registry import register_metric

__all__ = ["auc_borji", "auc_judd", "auc_pixels", "info_gain", "nss", "sauc"]


def _check_counts(fix: torch.Tensor, name: str = "fix") -> None:
    if fix.numel() == 0:
        return
    lo, hi = fix.amin(), fix.amax()  # NaN propagates into both
    if not (bool(lo >= 0) and bool(torch.isfinite(hi))):
        raise ValueError(f"{name} must be a map of fixation counts (finite, >= 0)")


def _finite_maps(maps: torch.Tensor) -> torch.Tensor:
    """(B,) True where a map has no NaN or inf.

    A NaN or inf makes the map's sum non-finite, so one cheap sum settles the usual case; the
    exact per-pixel test runs only when some sum is not finite (NaN, inf, or overflow).
    """
    finite = torch.isfinite(maps.sum(dim=(1, 2)))
    if bool(finite.all()):
        return finite
    return torch.isfinite(maps).flatten(1).all(dim=1)


def _generator(
    generator: torch.Generator | None, seed: int | None, device: torch.device
) -> torch.Generator | None:
    if generator is not None:
        return generator
    if seed is None:
        return None  # torch's global RNG
    gen = torch.Generator(device=device)
    gen.manual_seed(int(seed))
    return gen


def _suffix_counts(hist: torch.Tensor) -> torch.Tensor:
    """From ``hist[..., m]`` = #items with m thresholds <= value, #items >= each threshold."""
    return hist.flip(-1).cumsum(-1).flip(-1)[..., 1:]


def _trapz_asc(tp: torch.Tensor, fp: torch.Tensor) -> torch.Tensor:
    """:func:`_trapz_desc` without reversing: walking the curve from (1, 1) down to (0, 0)
    gives the negated area (``flip`` is slow on the CPU)."""
    zeros = torch.zeros_like(tp[..., :1])
    ones = torch.ones_like(tp[..., :1])
    tp = torch.cat([ones, tp, zeros], dim=-1)
    fp = torch.cat([ones, fp, zeros], dim=-1)
    return ((fp[..., :-1] - fp[..., 1:]) * (tp[..., 1:] + tp[..., :-1])).sum(-1) / 2


def _trapz_desc(tp: torch.Tensor, fp: torch.Tensor) -> torch.Tensor:
    """Area under the ROC curve (0,0) -> points (ascending thresholds reversed) -> (1,1)."""
    zeros = torch.zeros_like(tp[..., :1])
    ones = torch.ones_like(tp[..., :1])
    tp = torch.cat([zeros, tp.flip(-1), ones], dim=-1)
    fp = torch.cat([zeros, fp.flip(-1), ones], dim=-1)
    return ((fp[..., 1:] - fp[..., :-1]) * (tp[..., 1:] + tp[..., :-1])).sum(-1) / 2


def _nss(s: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
    x = s.flatten(1)
    w = c.flatten(1)
    const = is_constant(s)
    mean = x.mean(dim=1)
    centred = x - mean.unsqueeze(1)
    std = torch.sqrt(row_dot(centred, centred) / x.shape[1])
    n_fix = w.sum(dim=1)
    # mean of z at fixations = (weighted mean of the map at fixations - mean) / std: no z map.
    at_fix = row_dot(centred, w) / torch.where(n_fix > 0, n_fix, torch.ones_like(n_fix))
    out = at_fix / torch.where(const, torch.ones_like(std), std)
    return torch.where(const | (n_fix <= 0), float("nan"), out)


@register_metric("nss", needs="fix", higher_is_better=True, summary="mean z-score at fixations")
def nss(pred: torch.Tensor, fix: torch.Tensor) -> torch.Tensor:
    """Normalised Scanpath Saliency: mean of the z-scored map (population std) at fixations.

    Duplicates count: a pixel fixated twice weighs twice. NaN for a constant map or an image
    without fixations. This is the per-image mean; the per-fixation mean over a batch is
    ``(nss * n).sum() / n.sum()`` with ``n = fix.sum((-2, -1))``.
    """
    p = prepare(pred, fix, "fix")
    _check_counts(p.target)
    return finish(chunked(_nss, p.pred, p.target), p.squeeze)


def _auc_judd(s: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
    """AUC-Judd of (b, H, W) maps ``s`` and counts ``c``."""
    s = s.flatten(1)
    c = c.flatten(1)
    b, n = s.shape
    # Only the fixated pixels are gathered; every other quantity comes from them and from the
    # sorted map, so the full maps are read just by nonzero() and the sort.
    rows, cols = torch.nonzero(c, as_tuple=True)  # counts are >= 0: nonzero means fixated
    n_fixated = torch.bincount(rows, minlength=b)
    k = int(n_fixated.max()) if rows.numel() else 0
    if k == 0:
        return torch.full((b,), float("nan"), dtype=s.dtype, device=s.device)
    slot = (
        torch.arange(rows.numel(), device=s.device) - (torch.cumsum(n_fixated, 0) - n_fixated)[rows]
    )
    # Thresholds = the map values at fixated pixels (ascending), padded with +inf: a +inf
    # threshold is reached by nothing, i.e. the (0, 0) point, which adds no area.
    thr = torch.full((b, k), float("inf"), dtype=s.dtype, device=s.device)
    weight = torch.zeros(b, k, dtype=s.dtype, device=s.device)
    thr[rows, slot] = s[rows, cols]
    weight[rows, slot] = c[rows, cols]
    thr, order = thr.sort(dim=1)
    # Pixels (all of them) reaching each threshold, from the sorted map: O(k log n) look-ups.
    reach_all = n - torch.searchsorted(sort_rows(s), thr, right=False)
    return _judd_curve(thr, weight.gather(1, order), n_fixated, reach_all, n)


def _judd_curve(
    thr: torch.Tensor, weight: torch.Tensor, n_fixated: torch.Tensor, reach_all: torch.Tensor, n: int
) -> torch.Tensor:
    """AUC-Judd of (b,) maps from their (b, k) thresholds: the map values at the fixated pixels,
    sorted ascending and padded with +inf; ``weight`` the fixation counts in the same order
    (0 for padding); ``n_fixated`` (b,) the fixated pixels per map; ``reach_all`` (b, k) how
    many of the map's ``n`` pixels are >= each threshold. Shared by :func:`auc_judd` and the
    per-observer scores (:mod:`mlfem.gaze.observer_maps`), which count ``reach_all`` once per
    map for all observers."""
    padding = torch.isinf(thr)
    # Fixated pixels and fixation weight reaching each threshold, from the sorted thresholds.
    first_fix = torch.searchsorted(thr, thr, right=False)
    reach_fix = n_fixated.unsqueeze(1) - first_fix
    # Fixation weight at or above sorted position i: total minus the weight below i.
    below = torch.cat([torch.zeros_like(weight[:, :1]), weight.cumsum(1)], dim=1)
    total = below[:, -1:]
    tp = (total - below.gather(1, first_fix)) / total
    # Every pixel fixated: no negatives, FPR undefined -> NaN.
    negatives = (n - n_fixated).unsqueeze(1).to(thr.dtype)
    fp = (reach_all - reach_fix).clamp_min(0).to(thr.dtype) / negatives
    fp = torch.where(padding, torch.zeros_like(fp), fp)
    tp = torch.where(padding, torch.zeros_like(tp), tp)
    return torch.where(n_fixated > 0, _trapz_asc(tp, fp), float("nan"))


@register_metric("auc_judd", needs="fix", higher_is_better=True,
                 summary="AUC-Judd, unfixated pixels as negatives")
def auc_judd(pred: torch.Tensor, fix: torch.Tensor) -> torch.Tensor:
    """AUC-Judd (MIT benchmark, without jitter).

    Thresholds are the distinct map values at fixated pixels; the true-positive rate counts every
    fixation (duplicates too), the false-positive rate runs over unfixated pixels; the curve is
    closed with (0, 0) and (1, 1) and integrated with the trapezoid rule. A constant map gives
    0.5; an image without fixations (or with every pixel fixated) gives NaN.
    """
    p = prepare(pred, fix, "fix")
    _check_counts(p.target)
    finite = _finite_maps(p.pred)
    safe = p.pred
    if not bool(finite.all()):
        # Non-finite maps are scored as zeros (then set to NaN) so the sort stays well defined.
        safe = torch.where(finite.view(-1, 1, 1), p.pred, torch.zeros_like(p.pred))
    out = chunked(_auc_judd, safe, p.target)
    return finish(torch.where(finite, out, float("nan")), p.squeeze)


def _thresholds(step: float, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    if not (0 < step <= 1):
        raise ValueError(f"step must be in (0, 1], got {step}")
    # MATLAB's 0:step:max(values); values are in [0, 1] and thresholds above the largest value
    # only add (0, 0) points, so one fixed grid serves every map and split.
    count = int(math.floor(1.0 / step + 1e-9))
    return (torch.arange(count + 1, dtype=torch.float64) * step).to(dtype=dtype, device=device)


def _sampled_auc(
    s: torch.Tensor,
    c: torch.Tensor,
    draw: Callable[[], torch.Tensor],
    thresholds: torch.Tensor,
) -> torch.Tensor:
    """MIT-style AUC of one image: positives = map values at fixations (weighted by count),
    negatives = ``draw()`` -> (splits, m) map values; the mean AUC over splits."""
    n_thr = thresholds.numel()
    bins = torch.bucketize(s, thresholds, right=True)
    hist_pos = torch.zeros(n_thr + 1, dtype=s.dtype, device=s.device).scatter_add_(0, bins, c)
    tp = _suffix_counts(hist_pos) / c.sum()
    neg = draw()
    neg_bins = torch.bucketize(neg, thresholds, right=True)
    hist_neg = torch.zeros(neg.shape[0], n_thr + 1, dtype=s.dtype, device=s.device)
    hist_neg.scatter_add_(1, neg_bins, torch.ones_like(neg))
    fp = _suffix_counts(hist_neg) / neg.shape[1]
    return _trapz_desc(tp.expand_as(fp), fp).mean()


@register_metric("auc_borji", needs="fix", higher_is_better=True, uses=("seed",),
                 summary="AUC-Borji, random pixels as negatives")
def auc_borji(
    pred: torch.Tensor,
    fix: torch.Tensor,
    *,
    n_splits: int = 100,
    step: float = 0.1,
    generator: torch.Generator | None = None,
    seed: int | None = 0,
) -> torch.Tensor:
    """AUC-Borji (MIT benchmark): negatives are pixels drawn uniformly at random.

    The map is min-max rescaled to [0, 1] (a constant map becomes zeros and scores 0.5). For each
    of ``n_splits`` splits, as many pixels as there are fixations are drawn with replacement; the
    ROC uses thresholds ``0:step:1``. Randomness comes from ``generator`` or else a generator
    seeded with ``seed`` (``seed=None``: torch's global RNG); results are reproducible for a
    given seed and batch order. NaN for an image without fixations.
    """
    p = prepare(pred, fix, "fix")
    _check_counts(p.target)
    finite = _finite_maps(p.pred)
    s = minmax(p.pred, constant="zero").flatten(1)
    c = p.target.flatten(1)
    gen = _generator(generator, seed, s.device)
    gen_device = gen.device if gen is not None else s.device
    thresholds = _thresholds(step, s.dtype, s.device)
    n_pixels = s.shape[1]
    out = torch.full((s.shape[0],), float("nan"), dtype=s.dtype, device=s.device)
    totals = c.sum(dim=1).round().to(torch.int64).tolist()
    for i, n_fix in enumerate(totals):
        if n_fix == 0 or not bool(finite[i]):
            continue
        si = s[i]

        def draw(si: torch.Tensor = si, n_fix: int = n_fix) -> torch.Tensor:
            index = torch.randint(
                0, n_pixels, (int(n_splits), n_fix), generator=gen, device=gen_device
            )
            return si[index.to(si.device)]

        out[i] = _sampled_auc(si, c[i], draw, thresholds)
    return finish(out, p.squeeze)


def _rank_auc(s: torch.Tensor, pos_w: torch.Tensor, neg_w: torch.Tensor) -> torch.Tensor:
    """Exact weighted ROC AUC of one flattened map: P(neg < pos) + P(neg == pos) / 2."""
    neg_mask = neg_w > 0
    pos_mask = pos_w > 0
    if not bool(neg_mask.any()) or not bool(pos_mask.any()):
        return torch.tensor(float("nan"), dtype=s.dtype, device=s.device)
    neg_vals, order = s[neg_mask].sort()
    cum = neg_w[neg_mask][order].cumsum(0)
    cum = torch.cat([torch.zeros(1, dtype=s.dtype, device=s.device), cum])
    pos_vals = s[pos_mask].contiguous()
    below = cum[torch.searchsorted(neg_vals, pos_vals, right=False)]
    at_or_below = cum[torch.searchsorted(neg_vals, pos_vals, right=True)]
    score = below + 0.5 * (at_or_below - below)
    return (score * pos_w[pos_mask]).sum() / (pos_w[pos_mask].sum() * cum[-1])


@register_metric("auc_pixels", needs="fix", higher_is_better=True,
                 summary="AUC per fixation, all pixels as negatives")
def auc_pixels(pred: torch.Tensor, fix: torch.Tensor) -> torch.Tensor:
    """AUC with every pixel as a negative, per fixation (pysaliency's ``AUC``), ties counting 1/2.

    For each fixation, the fraction of the image's pixels the map ranks below it (half for
    equal values); the per-image mean over its fixations, duplicates counted. The per-fixation
    mean over a batch weighs images by their fixation counts. NaN without fixations, and for a
    map with a NaN or inf anywhere (as every other metric).
    """
    p = prepare(pred, fix, "fix")
    _check_counts(p.target)
    finite = _finite_maps(p.pred)
    s = p.pred.flatten(1)
    c = p.target.flatten(1)
    ones = torch.ones_like(s[0])
    out = torch.stack([_rank_auc(s[i], c[i], ones) for i in range(s.shape[0])])
    return finish(torch.where(finite, out, float("nan")), p.squeeze)


@register_metric("sauc", needs="fix", higher_is_better=True, uses=("other_fix", "seed"),
                 aliases=("s_auc",), summary="shuffled AUC, other images' fixations as negatives")
def sauc(
    pred: torch.Tensor,
    fix: torch.Tensor,
    other_fix: torch.Tensor,
    *,
    n_splits: int = 100,
    step: float = 0.1,
    exact: bool = False,
    generator: torch.Generator | None = None,
    seed: int | None = 0,
) -> torch.Tensor:
    """Shuffled AUC: negatives are fixations made on *other* images (cancels the centre bias).

    ``other_fix`` is a count map (same shape as ``fix``, or one (H, W) map for the whole batch)
    of the other images' fixations; duplicates count, so a location fixated twice is twice as
    likely to be drawn. Default (MIT benchmark): the map is min-max rescaled to [0, 1] (constant
    -> zeros), and for each of ``n_splits`` splits ``min(#fixations, #other fixations)`` other
    fixations are drawn without replacement; thresholds ``0:step:1``. ``exact=True`` instead
    uses every other fixation as a negative with the exact rank statistic (ties 1/2), no
    randomness. NaN when the image or the other images have no fixation.
    """
    p = prepare(pred, fix, "fix")
    _check_counts(p.target)
    other, _ = as_batch(other_fix, "other_fix")
    if other.shape[-2:] != p.target.shape[-2:] or other.shape[0] not in (1, p.target.shape[0]):
        raise ValueError(
            f"other_fix must be one (H, W) map or one map per image of fix's size "
            f"{tuple(p.target.shape)}, got {tuple(other.shape)}"
        )
    other = other.to(device=p.target.device, dtype=p.target.dtype).expand_as(p.target)
    _check_counts(other, "other_fix")
    c = p.target.flatten(1)
    o = other.flatten(1)
    out = torch.full((c.shape[0],), float("nan"), dtype=c.dtype, device=c.device)
    finite = _finite_maps(p.pred)
    if exact:
        s = p.pred.flatten(1)
        for i in range(c.shape[0]):
            out[i] = _rank_auc(s[i], c[i], o[i])
        return finish(torch.where(finite, out, float("nan")), p.squeeze)
    s = minmax(p.pred, constant="zero").flatten(1)
    gen = _generator(generator, seed, s.device)
    gen_device = gen.device if gen is not None else s.device
    thresholds = _thresholds(step, s.dtype, s.device)
    totals = c.sum(dim=1).round().to(torch.int64).tolist()
    for i, n_fix in enumerate(totals):
        flat = torch.nonzero(o[i] > 0).squeeze(1)
        locations = torch.repeat_interleave(flat, o[i][flat].round().to(torch.int64))
        if n_fix == 0 or locations.numel() == 0 or not bool(finite[i]):
            continue
        n_draw = min(n_fix, locations.numel())
        si = s[i]

        def draw(
            si: torch.Tensor = si, locations: torch.Tensor = locations, n_draw: int = n_draw
        ) -> torch.Tensor:
            # A uniformly random subset per split: the n_draw largest of i.i.d. uniform keys.
            keys = torch.rand((int(n_splits), locations.numel()), generator=gen, device=gen_device)
            pick = keys.topk(n_draw, dim=1).indices.to(si.device)
            return si[locations[pick]]

        out[i] = _sampled_auc(si, c[i], draw, thresholds)
    return finish(out, p.squeeze)


@register_metric("info_gain", needs="fix", higher_is_better=True, uses=("baseline",),
                 aliases=("ig",), summary="information gain over a baseline, bits/fixation")
def info_gain(
    pred: torch.Tensor,
    fix: torch.Tensor,
    baseline: torch.Tensor | str = "centre",
    *,
    variant: str = "default",
) -> torch.Tensor:
    """Information gain over a baseline, in bits per fixation.

    Both maps are turned into distributions (``"default"``: clipped at 0 and divided by the sum;
    ``"mit"``: min-max rescaled first, as the MIT code does, a constant map counting as
    uniform), then the per-image mean over fixations (duplicates counted) of
    ``log2(eps + p) - log2(eps + b)``. ``baseline`` is a map
    ((H, W) or (B, H, W), resized like ``pred``), ``"centre"`` (:func:`mlfem.gaze.centre_bias`
    with its default widths) or ``"uniform"``. Positive: the prediction beats the baseline.
    """
    if variant not in ("default", "mit"):
        raise ValueError(f"variant must be 'default' or 'mit', got {variant!r}")
    p = prepare(pred, fix, "fix")
    _check_counts(p.target)
    height, width = p.target.shape[-2:]
    if isinstance(baseline, str):
        if baseline in ("centre", "center"):
            base = centre_bias(height, width, dtype=p.target.dtype, device=p.target.device)
        elif baseline == "uniform":
            base = torch.ones(height, width, dtype=p.target.dtype, device=p.target.device)
        else:
            raise ValueError(f"baseline must be a map, 'centre' or 'uniform', got {baseline!r}")
    else:
        base = baseline
    b = prepare(base, p.target, "fix")
    pd, bd = p.pred, b.pred
    if variant == "mit":
        # MIT's code divides by zero on a constant map; a constant map carries no information,
        # so it is taken as the uniform density (a "uniform" baseline stays usable).
        pd, bd = minmax(pd, constant="one"), minmax(bd, constant="one")
    pd, bd = sum_normalise(pd), sum_normalise(bd)
    gain = torch.log2(EPS + pd) - torch.log2(EPS + bd)
    return finish(weighted_mean(gain, p.target), p.squeeze)
