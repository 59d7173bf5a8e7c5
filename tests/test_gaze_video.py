"""Gaze on video: per-frame GFDMs from (t, x, y) rows, the temporal Gaussian, and clip scores."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from mlfem.gaze import gfdm
from mlfem.gaze.video import (
    expand_fixations,
    frame_fixation_counts,
    frames_from_seconds,
    temporal_weights,
    video_gfdm,
)
from mlfem.gaze.video_scores import mean_over_clips, score_clip
from mlfem.metrics import nss, pcc, sim

H, W = 12, 16


def _image_gfdm(points: list[tuple[float, float]], sigma: float = 1.5) -> torch.Tensor:
    xs = [p[0] for p in points]
    ys = [p[1] for p in points]
    return gfdm(xs, ys, H, W, sigma, dtype=torch.float64)


# --------------------------------------------------------------------------- times and rows
def test_seconds_become_frames_with_boundaries_on_the_later_frame() -> None:
    assert frames_from_seconds([0.0, 0.0333, 0.5, 1 / 30, 0.999], 30).tolist() == [0, 0, 15, 1, 29]
    with pytest.raises(ValueError, match="fps"):
        frames_from_seconds([0.1], 0)


def test_fixations_expand_to_every_frame_they_are_on() -> None:
    # 100 ms from t = 0 at 30 fps covers [0, 0.1): frames 0, 1, 2; a 0 ms fixation one frame;
    # 40 ms from 0.02 s covers [0.02, 0.06): frames 0 and 1.
    rows = expand_fixations([0.0, 0.5, 0.02], [3, 10, 7], [4, 5, 1], fps=30,
                            durations_ms=[100, 0, 40])
    assert rows.tolist() == [[0, 3, 4], [1, 3, 4], [2, 3, 4], [15, 10, 5], [0, 7, 1], [1, 7, 1]]
    # Without durations each fixation is a gaze sample on one frame.
    assert expand_fixations([0.5], [1], [2], fps=10).tolist() == [[5, 1, 2]]
    with pytest.raises(ValueError, match="durations"):
        expand_fixations([0.0], [1], [1], fps=10, durations_ms=[-5])


# --------------------------------------------------------------------------- per-frame GFDM
def test_each_frame_is_the_image_gfdm_of_its_rows_and_empty_frames_are_zero() -> None:
    rows = torch.tensor([[0, 3, 4], [0, 10, 9], [2, 12, 2], [2, 12.4, 2.2], [3, 6, 5]],
                        dtype=torch.float64)
    out = video_gfdm(rows, 5, H, W, 1.5, dtype=torch.float64)
    assert out.maps.shape == (5, H, W)
    assert out.has_gaze.tolist() == [True, False, True, True, False]
    assert out.n_rows.tolist() == [2, 0, 2, 1, 0] and out.n_dropped == 0
    torch.testing.assert_close(out.maps[0], _image_gfdm([(3, 4), (10, 9)]))
    torch.testing.assert_close(out.maps[2], _image_gfdm([(12, 2), (12.4, 2.2)]))
    torch.testing.assert_close(out.maps[3], _image_gfdm([(6, 5)]))
    assert bool((out.maps[1] == 0).all() and (out.maps[4] == 0).all())
    # The mass is where the fixations are: the peak of frame 3 is its fixated pixel.
    assert divmod(int(out.maps[3].argmax()), W) == (5, 6)
    # A fractional time lands on floor(t); per-observer lists are pooled.
    split = video_gfdm([rows[:2], rows[2:] + torch.tensor([0.7, 0, 0])], 5, H, W, 1.5,
                       dtype=torch.float64)
    torch.testing.assert_close(split.maps, out.maps)


def test_rows_outside_the_frame_are_dropped_and_counted() -> None:
    rows = torch.tensor([[0, 3, 4], [0, -3, 4], [1, 2, 50], [1, float("nan"), 2]])
    out = video_gfdm(rows, 2, H, W, 1.0)
    assert out.n_dropped == 3 and out.has_gaze.tolist() == [True, False]
    assert out.maps.dtype == torch.float32
    torch.testing.assert_close(out.maps[0].double(), _image_gfdm([(3, 4)], 1.0), atol=1e-6,
                               rtol=0)


def test_temporal_gaussian_weights_match_a_hand_computation() -> None:
    sigma_t = 1.5
    radius = int(4 * sigma_t + 0.5)  # scipy's: 6
    phi = [math.exp(-0.5 * j * j / sigma_t**2) for j in range(-radius, radius + 1)]
    g = {j: phi[j + radius] / sum(phi) for j in range(-radius, radius + 1)}
    weights = temporal_weights(torch.tensor([0.0, 3.0, 20.0]), 6, sigma_t)
    expected = [[g[k], g[k - 3], 0.0] for k in range(6)]  # frame 20 is beyond the radius
    torch.testing.assert_close(weights, torch.tensor(expected, dtype=torch.float64))
    # Without a temporal sigma a row stays on its frame.
    assert temporal_weights(torch.tensor([1.0]), 3).reshape(-1).tolist() == [0.0, 1.0, 0.0]

    a, b = (3.0, 4.0), (11.0, 8.0)
    rows = torch.tensor([[0, *a], [3, *b]], dtype=torch.float64)
    out = video_gfdm(rows, 6, H, W, 1.5, temporal_sigma=sigma_t, dtype=torch.float64)
    ga, gb = _image_gfdm([a]), _image_gfdm([b])
    for k in range(6):
        wa, wb = math.exp(-0.5 * k**2 / sigma_t**2), math.exp(-0.5 * (k - 3) ** 2 / sigma_t**2)
        torch.testing.assert_close(out.maps[k], (wa * ga + wb * gb) / (wa + wb))
    assert out.has_gaze.all() and out.n_rows.tolist() == [2] * 6


def test_cutting_a_video_into_clips_keeps_its_maps() -> None:
    rng = np.random.default_rng(0)
    rows = np.stack([rng.integers(0, 12, 30), rng.uniform(0, W - 1, 30),
                     rng.uniform(0, H - 1, 30)], axis=1)
    whole = video_gfdm(rows, 12, H, W, 1.0, temporal_sigma=1.0, dtype=torch.float64)
    first = video_gfdm(rows, 5, H, W, 1.0, temporal_sigma=1.0, dtype=torch.float64)
    rest = video_gfdm(rows, 7, H, W, 1.0, temporal_sigma=1.0, first_frame=5, dtype=torch.float64)
    torch.testing.assert_close(torch.cat([first.maps, rest.maps]), whole.maps)


def test_frame_count_maps_count_the_rows_of_each_frame() -> None:
    rows = [torch.tensor([[0, 3, 4], [0, 3, 4], [2, 5, 6]]), torch.tensor([[2, 5.2, 5.9]])]
    counts = frame_fixation_counts(rows, 3, H, W)
    assert counts.shape == (3, H, W) and counts.sum((1, 2)).tolist() == [2, 0, 2]
    assert counts[0, 4, 3] == 2 and counts[2, 6, 5] == 2


# --------------------------------------------------------------------------- clip scores
def _clip() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    rows = torch.tensor([[0, 3, 4], [0, 10, 9], [1, 12, 2], [3, 6, 6], [3, 7, 5]],
                        dtype=torch.float64)
    maps = video_gfdm(rows, 4, H, W, 1.5, dtype=torch.float64).maps  # frame 2 has no gaze
    saliency = torch.rand(4, H, W, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    return saliency, maps, rows


def test_clip_scores_average_the_per_frame_metrics_over_frames_with_gaze() -> None:
    saliency, maps, rows = _clip()
    counts = frame_fixation_counts(rows, 4, H, W)
    out = score_clip(saliency, maps, rows, ("pcc", "sim", "nss"), per_frame=True)
    assert out["frames"] == 4 and out["frames_scored"] == 3 and out["resized"] is False
    for name, fn, ref in (("pcc", pcc, maps), ("sim", sim, maps), ("nss", nss, counts)):
        by_hand = [float(fn(saliency[k], ref[k])) for k in (0, 1, 3)]
        assert out[name] == pytest.approx(sum(by_hand) / 3, rel=1e-12)
        assert out[f"frames_nan_{name}"] == 0
        assert out["per_frame"][name][:2] + out["per_frame"][name][3:] == pytest.approx(by_hand)
        assert math.isnan(out["per_frame"][name][2])
    # Count maps instead of rows give the same scores.
    assert score_clip(saliency, maps, counts, ("nss",))["nss"] == pytest.approx(out["nss"])


def test_undefined_frames_are_left_out_and_counted() -> None:
    saliency, maps, rows = _clip()
    saliency[1] = 0.5  # a constant map: PCC undefined on frame 1
    out = score_clip(saliency, maps, rows, ("pcc",))
    by_hand = [float(pcc(saliency[k], maps[k])) for k in (0, 3)]
    assert out["frames_scored"] == 3 and out["frames_nan_pcc"] == 1
    assert out["pcc"] == pytest.approx(sum(by_hand) / 2, rel=1e-12)
    # No frame with gaze at all: NaN, and every frame counted as skipped.
    empty = score_clip(saliency, torch.zeros_like(maps), None, ("pcc",))
    assert empty["frames_scored"] == 0 and math.isnan(empty["pcc"])


def test_a_smaller_map_is_resized_per_frame_and_errors_name_the_problem() -> None:
    saliency, maps, rows = _clip()
    small = torch.nn.functional.interpolate(saliency[None], size=(6, 8), mode="bilinear")[0]
    out = score_clip(small, maps, rows, ("pcc",))
    assert out["resized"] is True and math.isfinite(out["pcc"])
    with pytest.raises(ValueError, match="gfdm"):
        score_clip(saliency, None, rows, ("pcc",))
    with pytest.raises(ValueError, match="fixations"):
        score_clip(saliency, maps, None, ("nss",))
    with pytest.raises(ValueError, match="T = 3"):
        score_clip(saliency[:3], maps, rows, ("pcc",))


def test_scores_average_over_clips_one_vote_per_clip() -> None:
    clips = [{"frames": 4, "frames_scored": 3, "pcc": 0.5, "frames_nan_pcc": 0},
             {"frames": 8, "frames_scored": 8, "pcc": 0.1, "frames_nan_pcc": 1},
             {"frames": 2, "frames_scored": 0, "pcc": math.nan, "frames_nan_pcc": 0}]
    out = mean_over_clips(clips)
    assert out == {"clips": 3, "frames": 14, "frames_scored": 11, "pcc": pytest.approx(0.3),
                   "clips_nan_pcc": 1}


# --------------------------------------------------------------------------- on the benchmark
def test_maps_that_follow_the_target_score_above_maps_that_stay() -> None:
    from mlfem.datasets import open_dataset

    ds = open_dataset("synthetic-video", n=6, seed=4, frames=12, size=48)
    follow, stay = [], []
    for s in ds:
        masks = s.extras["masks"].double()
        follow.append(score_clip(masks, s.gfdm, s.fixations, ("pcc", "nss")))
        stay.append(score_clip(masks[:1].expand_as(masks), s.gfdm, s.fixations, ("pcc", "nss")))
    follow, stay = mean_over_clips(follow), mean_over_clips(stay)
    assert follow["frames_scored"] == 6 * 12 and follow["clips_nan_pcc"] == 0
    assert follow["pcc"] > 0.4 and follow["pcc"] > stay["pcc"] + 0.2  # measured: 0.49, 0.24
    assert follow["nss"] > stay["nss"] + 1.0  # measured: 2.31 against 0.86 (seed 4)


def test_an_explainers_clip_maps_are_scored_per_frame() -> None:
    from tiny_models import TinyCNN3D

    from mlfem.datasets import open_dataset
    from mlfem.explainers import MLFEM

    torch.manual_seed(0)
    ds = open_dataset("synthetic-video", n=2, seed=5, frames=8, size=32)
    clips = torch.stack([s.image for s in ds]).float() / 255  # (B, 3, T, H, W)
    maps = MLFEM(TinyCNN3D().eval())(clips)
    assert maps.shape == (2, 8, 32, 32)
    for b, s in enumerate(ds):
        out = score_clip(maps[b], s.gfdm, s.fixations, ("pcc", "sim", "nss", "auc_judd"))
        assert out["frames_scored"] == int(s.extras["has_gaze"].sum()) > 0
        assert all(math.isfinite(out[m]) for m in ("pcc", "sim", "nss", "auc_judd"))
        assert -1 <= out["pcc"] <= 1 and 0 <= out["sim"] <= 1 and 0 <= out["auc_judd"] <= 1


def test_the_clip_human_ceiling_leaves_each_observer_out_in_turn() -> None:
    from mlfem.gaze.video_reference import clip_human_ceiling

    observers = [
        torch.tensor([[0, 3, 4], [1, 4, 4], [2, 5, 5]], dtype=torch.float64),
        torch.tensor([[0, 4, 5], [1, 5, 4], [2, 6, 6]], dtype=torch.float64),
        torch.tensor([[0, 10, 8], [2, 11, 9]], dtype=torch.float64),  # no gaze on frame 1
    ]
    out = clip_human_ceiling(observers, 3, H, W, 1.5, ("cc", "nss"))
    expected = {"pcc": [], "nss": []}
    for o, own in enumerate(observers):
        others = torch.cat([r for j, r in enumerate(observers) if j != o])
        pred = video_gfdm(others, 3, H, W, 1.5, dtype=torch.float64).maps
        target = video_gfdm(own, 3, H, W, 1.5, dtype=torch.float64).maps
        counts = frame_fixation_counts(own, 3, H, W)
        frames = [k for k in range(3) if counts[k].sum() > 0]
        expected["pcc"].append(sum(float(pcc(pred[k], target[k])) for k in frames) / len(frames))
        expected["nss"].append(sum(float(nss(pred[k], counts[k])) for k in frames) / len(frames))
    assert out["observers"] == 3 and out["observers_nan_pcc"] == 0
    for name in ("pcc", "nss"):
        assert out["per_observer"][name] == pytest.approx(expected[name], rel=1e-12)
        assert out[name] == pytest.approx(sum(expected[name]) / 3, rel=1e-12)
    # The two observers who looked at the same place agree more with the rest than the third.
    assert min(out["per_observer"]["pcc"][:2]) > out["per_observer"]["pcc"][2]
    assert mean_over_clips([out, out]) == {"clips": 2, "pcc": pytest.approx(out["pcc"]),
                                           "clips_nan_pcc": 0, "nss": pytest.approx(out["nss"]),
                                           "clips_nan_nss": 0}
    with pytest.raises(ValueError, match="two observers"):
        clip_human_ceiling(observers[:1] + [torch.zeros((0, 3))], 3, H, W, 1.5)
