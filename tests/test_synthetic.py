"""The synthetic gaze benchmark: determinism, labels vs drawn objects, gaze on objects."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from mlfem.datasets import SyntheticGaze, open_dataset
from mlfem.datasets.synthetic import CLASS_NAMES, _texture


def same(a, b) -> bool:
    return (
        torch.equal(a.image, b.image)
        and torch.equal(a.gfdm, b.gfdm)
        and a.labels == b.labels
        and all(torch.equal(x, y) for x, y in zip(a.fixations, b.fixations))
    )


def test_registered_and_schema() -> None:
    ds = open_dataset("synthetic", n=5, seed=0, mode="single")
    assert isinstance(ds, SyntheticGaze) and len(ds) == 5
    s = ds[0]
    assert s.image.dtype == torch.uint8 and s.image.shape == (3, 128, 128)
    assert s.gfdm.shape == (128, 128) and float(s.gfdm.sum()) == pytest.approx(1.0, abs=1e-5)
    assert len(s.fixations) == 8 and all(f.shape[1] == 2 for f in s.fixations)
    assert all(len(d) == len(f) for d, f in zip(s.durations, s.fixations))
    assert ds.class_names == list(CLASS_NAMES) and s.class_names == [CLASS_NAMES[s.labels[0]]]
    assert s.image_id == "0-000000" and s.split is None


def test_deterministic_per_seed_and_index() -> None:
    a = SyntheticGaze(n=6, seed=3, mode="multi")
    b = SyntheticGaze(n=50, seed=3, mode="multi")  # sample i does not depend on n
    assert same(a[4], b[4]) and same(a[4], a[4])
    assert same(a[-1], b[5])
    c = SyntheticGaze(n=6, seed=4, mode="multi")
    assert not torch.equal(a[4].image, c[4].image)
    assert not torch.equal(a[4].image, a[3].image)


def test_labels_match_the_objects_drawn() -> None:
    ds = SyntheticGaze(n=12, seed=5, mode="multi", max_classes=3, max_objects=4)
    counts = set()
    for s in ds:
        masks, kinds = s.extras["masks"], s.extras["object_labels"]
        assert masks.shape[0] == len(kinds) >= 1 and masks.flatten(1).any(1).all()
        assert s.labels == sorted(set(kinds.tolist()))
        assert s.n_classes_present == len(s.labels) <= 3 and len(kinds) <= 4
        counts.add(s.n_classes_present)
        grey = s.image.float().mean(0).numpy()
        for mask, kind in zip(masks.numpy(), kinds.tolist()):
            # The pixels of each object follow its class texture better than any other's.
            scores = []
            for k in range(len(CLASS_NAMES)):
                pattern = _texture(k, 128, 128, 1.0)[mask]
                if pattern.all() or not pattern.any():
                    scores.append(-1.0)
                    continue
                scores.append(abs(np.corrcoef(grey[mask], pattern)[0, 1]))
            assert int(np.argmax(scores)) == kind
        boxes = s.extras["boxes"]
        ys, xs = np.nonzero(masks[0].numpy())
        assert boxes[0].tolist() == [xs.min(), ys.min(), xs.max(), ys.max()]
    assert len(counts) > 1  # clutter varies


def test_single_mode_one_class_several_instances() -> None:
    ds = SyntheticGaze(n=20, seed=2, mode="single", max_objects=3, n_classes=4)
    instances = set()
    for s in ds:
        assert len(s.labels) == 1 and s.labels[0] < 4 and s.n_classes_present == 1
        assert set(s.extras["object_labels"].tolist()) == set(s.labels)
        instances.add(len(s.extras["object_labels"]))
    assert instances == {1, 2, 3}


def test_gfdm_mass_concentrates_on_objects() -> None:
    ds = SyntheticGaze(n=10, seed=11, mode="multi", p_centre=0.1, p_distractor=0.15)
    mass, area = [], []
    for s in ds:
        on = s.extras["masks"].any(0)
        # Grow the masks by about one sigma (6 px): the GFDM is a blurred density.
        grown = torch.nn.functional.max_pool2d(on[None, None].float(), 13, 1, 6)[0, 0] > 0
        mass.append(float(s.gfdm[grown].sum()))
        area.append(float(grown.float().mean()))
    assert np.mean(mass) > 0.7 and np.mean(mass) > 2.5 * np.mean(area)


def test_observers_can_be_drawn_to_distractors_and_centre() -> None:
    ds = SyntheticGaze(n=8, seed=1, mode="single", p_centre=0.0, p_distractor=1.0,
                       max_distractors=2, noise=0.0)
    checked = 0
    for s in ds:
        d = s.extras["distractor_masks"]
        if d.shape[0] == 0:
            continue  # no distractor drawn: fixations fall back to the objects
        points = s.all_fixations().round().long().clamp(0, 127)
        near = torch.nn.functional.max_pool2d(d.any(0)[None, None].float(), 9, 1, 4)[0, 0] > 0
        assert near[points[:, 1], points[:, 0]].float().mean() > 0.8
        checked += 1
    assert checked > 0
    centred = SyntheticGaze(n=3, seed=1, p_centre=1.0, p_distractor=0.0, noise=0.0)
    pooled = torch.cat([s.all_fixations() for s in centred])
    assert (pooled.mean(0) - 63.5).abs().max() < 6


def test_options_size_and_validation() -> None:
    s = SyntheticGaze(n=2, seed=0, size=(64, 96), n_observers=3,
                      fixations_per_observer=(2, 2), gfdm="none")[1]
    assert s.image.shape == (3, 64, 96) and s.gfdm is None
    assert sum(len(f) for f in s.fixations) + s.n_outside == 6
    bad_options = ({"mode": "both"}, {"seed": -1}, {"n_classes": 7}, {"size": 16},
                   {"p_centre": 0.9, "p_distractor": 0.2}, {"gfdm": "shipped"},
                   {"fixations_per_observer": (3, 2)})
    for bad in bad_options:
        with pytest.raises(ValueError):
            SyntheticGaze(n=1, **bad)


def test_splits_on_synthetic_ids(tmp_path) -> None:
    path = tmp_path / "syn.json"
    train = SyntheticGaze(n=20, seed=0, split="train", splits=path)
    test = SyntheticGaze(n=20, seed=0, split="test", splits=path)
    assert len(train) == 16 and len(test) == 2 and path.is_file()
    assert not set(train.image_ids) & set(test.image_ids)
    assert test[0].split == "test"
    assert test[0].image_id == test.image_ids[0]


@pytest.mark.slow
def test_a_tiny_cnn_learns_the_single_label_task() -> None:
    # Tiny budget (48 px, 300 images, 50 steps; a few seconds of compute): chance is 1/3.
    # The full-size measurement (128 px, 6 classes) is in docs/datasets.md.
    threads = torch.get_num_threads()
    # One thread: on a busy 2-core machine, two threads contend and run ~10x slower.
    torch.set_num_threads(1)
    try:
        _train_and_check_tiny_cnn()
    finally:
        torch.set_num_threads(threads)


def _train_and_check_tiny_cnn() -> None:
    torch.manual_seed(0)

    def data(seed: int, n: int) -> tuple[torch.Tensor, torch.Tensor]:
        ds = SyntheticGaze(n=n, seed=seed, size=48, n_classes=3, gfdm="none")
        samples = [ds[i] for i in range(n)]
        x = torch.stack([s.image for s in samples]).float() / 127.5 - 1
        return x, torch.tensor([s.labels[0] for s in samples])

    x_train, y_train = data(0, 300)
    x_test, y_test = data(1, 150)  # another seed: images never seen in training

    def block(i: int, o: int) -> torch.nn.Module:
        return torch.nn.Sequential(torch.nn.Conv2d(i, o, 3, 1, 1), torch.nn.BatchNorm2d(o),
                                   torch.nn.ReLU(), torch.nn.MaxPool2d(2))

    net = torch.nn.Sequential(block(3, 8), block(8, 16), block(16, 32),
                              torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(),
                              torch.nn.Linear(32, 3))
    optimiser = torch.optim.Adam(net.parameters(), lr=5e-3)
    for _ in range(5):
        order = torch.randperm(len(x_train))
        for start in range(0, len(order), 30):
            batch = order[start : start + 30]
            loss = torch.nn.functional.cross_entropy(net(x_train[batch]), y_train[batch])
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
    net.eval()
    with torch.no_grad():
        accuracy = (net(x_test).argmax(1) == y_test).float().mean().item()
    assert accuracy > 0.75
