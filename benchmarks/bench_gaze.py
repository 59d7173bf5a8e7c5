"""Benchmark of mlfem.gaze / mlfem.metrics against straightforward per-image numpy code (CPU).

Not a test. Run: ``uv run python benchmarks/bench_gaze.py [--maps 200] [--naive-maps 2]``.

1. GFDM construction: ``--maps`` maps of 480x640, 60 observers x 20 fixations each (sigma 19 px,
   SALICON's), ``mlfem.gaze.gfdm_batch`` vs a naive numpy sum of one full-image Gaussian per
   fixation. The naive one is timed on ``--naive-maps`` maps and extrapolated (said in the output).
2. PCC + SIM + NSS + AUC-Judd on ``--maps`` maps of 480x640: batched torch vs per-image numpy.
   Two numpy baselines: a port of the MIT benchmark code (AUC-Judd loops over the thresholds;
   timed on a subset and extrapolated) and a vectorised numpy AUC-Judd (sort + searchsorted).
3. If the OSIE sample is beside the clone: human ceiling vs centre bias (PCC, SIM, NSS, AUC-Judd)
   on all 40 images, and the RMS offset of their fixations from the image centre.

Everything runs in one process with ``torch.set_num_threads(2)``.
"""

from __future__ import annotations

import argparse
import os
import platform
import time
from pathlib import Path

import numpy as np
import torch

from mlfem import metrics
from mlfem.gaze import Fixations, centre_bias, fixation_counts, gfdm_batch

H, W = 480, 640
SIGMA = 19.0


def timed(fn, repeat: int = 1):
    """Best wall time of ``repeat`` runs, and the last result."""
    best, out = float("inf"), None
    for _ in range(repeat):
        start = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - start)
    return best, out


def make_fixations(n_maps: int, seed: int = 0) -> list[Fixations]:
    rng = np.random.default_rng(seed)
    images = []
    for _ in range(n_maps):
        # 60 observers x 20 fixations around a few salient spots plus uniform exploration.
        spots = rng.uniform((40, 40), (W - 40, H - 40), (4, 2))
        pick = rng.integers(0, 4, 1200)
        pts = spots[pick] + rng.normal(0, 45, (1200, 2))
        wander = rng.random(1200) < 0.2
        pts[wander] = rng.uniform((0, 0), (W, H), (int(wander.sum()), 2))
        images.append(
            Fixations(
                xs=pts[:, 0],
                ys=pts[:, 1],
                height=H,
                width=W,
                observers=np.repeat(np.arange(60), 20),
            )
        )
    return images


def naive_gfdm(fix: Fixations, sigma: float) -> np.ndarray:
    """One full-image Gaussian per fixation, summed (the textbook definition)."""
    ys, xs = np.mgrid[:H, :W]
    total = np.zeros((H, W))
    for x, y in zip(np.floor(fix.xs + 0.5), np.floor(fix.ys + 0.5)):
        if 0 <= x < W and 0 <= y < H:
            total += np.exp(-((xs - x) ** 2 + (ys - y) ** 2) / (2 * sigma**2))
    return total / total.sum()


# ---- per-image numpy metrics ---------------------------------------------------------------


def np_pcc(p: np.ndarray, g: np.ndarray) -> float:
    p = p - p.mean()
    g = g - g.mean()
    return float((p * g).sum() / np.sqrt((p * p).sum() * (g * g).sum()))


def np_sim(p: np.ndarray, g: np.ndarray) -> float:
    p = np.clip(p, 0, None)
    g = np.clip(g, 0, None)
    return float(np.minimum(p / p.sum(), g / g.sum()).sum())


def np_nss(p: np.ndarray, fix: np.ndarray) -> float:
    z = (p - p.mean()) / p.std()
    return float((z * fix).sum() / fix.sum())


def np_auc_judd_mit(p: np.ndarray, fix: np.ndarray) -> float:
    """Port of MIT AUC_Judd.m: one pass over the map per fixation threshold."""
    s, f = p.ravel(), fix.ravel()
    sth = np.sort(s[f > 0])[::-1]
    n_fix, n_pix = sth.size, s.size
    tp = np.zeros(n_fix + 2)
    fp = np.zeros(n_fix + 2)
    tp[-1] = fp[-1] = 1
    for i, t in enumerate(sth):
        tp[i + 1] = (i + 1) / n_fix
        fp[i + 1] = ((s >= t).sum() - (i + 1)) / (n_pix - n_fix)
    return float(np.trapezoid(tp, fp))


def np_auc_judd_vec(p: np.ndarray, fix: np.ndarray) -> float:
    """Vectorised numpy AUC-Judd (same definition as mlfem's): sort + searchsorted."""
    s, c = p.ravel(), fix.ravel()
    fixated = c > 0
    thr = np.sort(s[fixated])  # ascending
    order = np.argsort(s)
    sorted_s = s[order]
    neg_cum = np.concatenate([[0], np.cumsum(~fixated[order])])
    pos_cum = np.concatenate([[0], np.cumsum(c[order])])
    start = np.searchsorted(sorted_s, thr, side="left")  # pixels >= thr begin here
    tp = (pos_cum[-1] - pos_cum[start]) / pos_cum[-1]
    fp = (neg_cum[-1] - neg_cum[start]) / neg_cum[-1]
    tp = np.concatenate([[0], tp[::-1], [1]])
    fp = np.concatenate([[0], fp[::-1], [1]])
    return float(np.trapezoid(tp, fp))


def numpy_metrics(preds, gts, fixes, auc) -> np.ndarray:
    return np.array(
        [
            (np_pcc(p, g), np_sim(p, g), np_nss(p, f), auc(p, f))
            for p, g, f in zip(preds, gts, fixes)
        ]
    )


def torch_metrics(pred: torch.Tensor, gt: torch.Tensor, fix: torch.Tensor) -> torch.Tensor:
    return torch.stack(
        [
            metrics.pcc(pred, gt),
            metrics.sim(pred, gt),
            metrics.nss(pred, fix),
            metrics.auc_judd(pred, fix),
        ],
        dim=1,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--maps", type=int, default=200)
    parser.add_argument("--naive-maps", type=int, default=2, help="maps timed for the naive GFDM")
    parser.add_argument("--mit-maps", type=int, default=10, help="maps timed for the MIT-loop port")
    parser.add_argument("--skip-osie", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(2)
    print(
        f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
        f"torch {torch.__version__} ({torch.get_num_threads()} threads), numpy {np.__version__}, "
        f"{time.strftime('%Y-%m-%d')}"
    )
    try:
        print(f"load average at start: {os.getloadavg()[0]:.2f}")
    except OSError:
        pass

    # ---- 1. GFDM ---------------------------------------------------------------------------
    images = make_fixations(args.maps)
    gfdm_batch(images[:4], SIGMA)  # warm-up (kernel matrices, allocator)
    t_ours, batch = timed(lambda: gfdm_batch(images, SIGMA, padding="zero"), repeat=2)
    n_naive = max(1, min(args.naive_maps, args.maps))
    t_naive, naive = timed(lambda: [naive_gfdm(f, SIGMA) for f in images[:n_naive]])
    t_naive_all = t_naive / n_naive * args.maps
    diff = max(
        float(np.abs(batch.maps[i].double().numpy() - naive[i]).max() / naive[i].max())
        for i in range(n_naive)
    )
    print(f"\n[GFDM] {args.maps} maps {H}x{W}, 60 observers x 20 fixations, sigma {SIGMA} px")
    print(
        f"  mlfem gfdm_batch (float32, zero padding): {t_ours:.3f} s "
        f"({1000 * t_ours / args.maps:.2f} ms/map)"
    )
    print(
        f"  naive numpy Gaussian sum: {t_naive:.2f} s for {n_naive} maps, "
        f"extrapolated to {args.maps}: {t_naive_all:.1f} s"
    )
    print(
        f"  speed-up: {t_naive_all / t_ours:.0f}x (target >= 20x); "
        f"max |difference| / peak = {diff:.1e} (4-sigma truncation)"
    )
    t_ours64, _ = timed(lambda: gfdm_batch(images, SIGMA, dtype=torch.float64))
    print(f"  float64, reflect padding: {t_ours64:.3f} s")

    # ---- 2. metrics --------------------------------------------------------------------------
    gts = batch.maps
    fix = fixation_counts(
        [f.xs for f in images], [f.ys for f in images], H, W, dtype=torch.float32
    ).counts
    rng = np.random.default_rng(1)
    # Predictions: the GFDM of a different random image mixed with smooth noise.
    noise = torch.nn.functional.interpolate(
        torch.tensor(rng.random((args.maps, 1, 15, 20)), dtype=torch.float32),
        size=(H, W),
        mode="bilinear",
        align_corners=False,
    ).squeeze(1)
    preds = 0.5 * gts.roll(1, 0) / gts.amax(dim=(1, 2), keepdim=True) + noise
    torch_metrics(preds[:4], gts[:4], fix[:4])  # warm-up
    t_torch, ours = timed(lambda: torch_metrics(preds, gts, fix), repeat=2)
    p_np, g_np, f_np = preds.numpy(), gts.numpy(), fix.numpy()
    t_vec, ref_vec = timed(lambda: numpy_metrics(p_np, g_np, f_np, np_auc_judd_vec))
    n_mit = max(1, min(args.mit_maps, args.maps))
    t_mit, ref_mit = timed(
        lambda: numpy_metrics(p_np[:n_mit], g_np[:n_mit], f_np[:n_mit], np_auc_judd_mit)
    )
    t_mit_all = t_mit / n_mit * args.maps
    agree = float(np.abs(ours.double().numpy() - ref_vec).max())
    # The MIT code reads a binary fixation map; compare on one (ours counts duplicates).
    binary = metrics.auc_judd(preds[:n_mit], (fix[:n_mit] > 0).float())
    agree_mit = float(np.abs(binary.double().numpy() - ref_mit[:, 3]).max())
    print(
        f"\n[metrics] PCC + SIM + NSS + AUC-Judd, {args.maps} maps {H}x{W}, float32, "
        f"~{int(fix.sum() / args.maps)} fixations per map"
    )
    print(f"  mlfem batched torch: {t_torch:.3f} s ({1000 * t_torch / args.maps:.2f} ms/map)")
    print(
        f"  per-image numpy, MIT-code AUC-Judd loop: {t_mit:.2f} s for {n_mit} maps, "
        f"extrapolated to {args.maps}: {t_mit_all:.1f} s -> speed-up {t_mit_all / t_torch:.0f}x"
    )
    print(
        f"  per-image numpy, vectorised AUC-Judd: {t_vec:.2f} s -> speed-up {t_vec / t_torch:.1f}x "
        f"(target >= 10x)"
    )
    print(
        f"  max |torch - numpy| over the 4 metrics: {agree:.1e}; "
        f"AUC-Judd vs MIT loop (binary fixation maps): {agree_mit:.1e}"
    )

    # ---- 3. OSIE reference points -------------------------------------------------------------
    osie = Path(__file__).resolve().parents[2] / "shared" / "data" / "osie"
    if args.skip_osie or not (osie / "fixations.mat").is_file():
        print("\n[OSIE] skipped (no ../shared/data/osie)")
        return
    from mlfem.gaze import CentreBias, human_ceiling, observer_scores, read_osie

    data = read_osie(osie)
    centre = centre_bias(600, 800)
    start = time.perf_counter()
    print(f"\n[OSIE] {len(data)} images, 15 observers, sigma 24 px; mean over images")
    for name in ("pcc", "sim", "nss", "auc_judd"):
        ceiling = np.mean([human_ceiling(f, 24.0, name, dtype=torch.float32).mean for f in data])
        base = np.mean(
            [observer_scores(centre, f, 24.0, name, dtype=torch.float32).mean for f in data]
        )
        print(f"  {name:8s} human ceiling {ceiling:.3f}   centre bias (same targets) {base:.3f}")
    fitted = CentreBias.fit(data)
    print(f"  fixations' RMS offset from the centre: {fitted.sigma_x:.2f} W x {fitted.sigma_y:.2f} H")
    full = gfdm_batch(data, 24.0).maps
    print(
        f"  centre bias vs full GFDM: PCC {float(metrics.pcc(centre, full).mean()):.3f}, "
        f"SIM {float(metrics.sim(centre, full).mean()):.3f}  ({time.perf_counter() - start:.0f} s)"
    )


if __name__ == "__main__":
    main()
