"""Can a small CNN learn the synthetic gaze benchmark's classes? (docs/datasets.md)

Trains a 61 k-parameter CNN (four conv-BN-ReLU blocks of 16, 32, 64 and 64 channels, the
first with stride 2, max-pooling after the first three, global average pooling, a linear
head) with AdamW and a one-cycle learning rate (max 3e-3), batch 64, on ``--n`` images of
``open_dataset("synthetic", seed=0)`` at 128x128 scaled to [-1, 1], and tests it on 1000
images of another seed (1), never seen in training. Single-label: accuracy; multi-label:
exact match (every present class above 0.5 and no absent one) and per-label accuracy.
Prints one Markdown row with the generation and training times.

    uv run python benchmarks/synthetic_learnability.py --mode single --n 2000 --epochs 4
    uv run python benchmarks/synthetic_learnability.py --mode multi --n 3000 --epochs 6
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import machine_description  # noqa: E402

TEST_IMAGES = 1000


def tensors(seed: int, n: int, mode: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Images scaled to [-1, 1] and multi-hot labels of ``n`` generated samples."""
    from mlfem.datasets import open_dataset

    dataset = open_dataset("synthetic", n=n, seed=seed, mode=mode, gfdm="none")
    samples = [dataset[i] for i in range(n)]
    images = torch.stack([s.image for s in samples]).float() / 127.5 - 1
    labels = torch.zeros(n, dataset.num_classes)
    for index, sample in enumerate(samples):
        labels[index, sample.labels] = 1
    return images, labels


def block(inputs: int, outputs: int, stride: int = 1) -> nn.Module:
    return nn.Sequential(nn.Conv2d(inputs, outputs, 3, stride, 1, bias=False), nn.BatchNorm2d(outputs), nn.ReLU())


def small_cnn(classes: int) -> nn.Module:
    return nn.Sequential(block(3, 16, 2), nn.MaxPool2d(2), block(16, 32), nn.MaxPool2d(2),
                         block(32, 64), nn.MaxPool2d(2), block(64, 64),
                         nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(64, classes))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mode", choices=("single", "multi"), default="single")
    parser.add_argument("--n", type=int, default=2000, help="training images (seed 0)")
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)

    started = time.perf_counter()
    x_train, y_train = tensors(0, args.n, args.mode)
    x_test, y_test = tensors(1, TEST_IMAGES, args.mode)
    generation = time.perf_counter() - started

    model = small_cnn(y_train.shape[1])
    steps = args.epochs * -(-args.n // 64)
    optimiser = torch.optim.AdamW(model.parameters(), lr=3e-3)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimiser, max_lr=3e-3, total_steps=steps)
    started = time.perf_counter()
    model.train()
    for _ in range(args.epochs):
        order = torch.randperm(args.n)
        for start in range(0, args.n, 64):
            batch = order[start : start + 64]
            logits = model(x_train[batch])
            if args.mode == "single":
                loss = F.cross_entropy(logits, y_train[batch].argmax(1))
            else:
                loss = F.binary_cross_entropy_with_logits(logits, y_train[batch])
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
            schedule.step()
    training = time.perf_counter() - started

    model.eval()
    with torch.no_grad():
        logits = torch.cat([model(x_test[i : i + 200]) for i in range(0, TEST_IMAGES, 200)])
    if args.mode == "single":
        score = f"**{(logits.argmax(1) == y_test.argmax(1)).float().mean().item():.1%}** accuracy"
    else:
        predicted = logits.sigmoid() > 0.5
        truth = y_test > 0.5
        exact = (predicted == truth).all(1).float().mean().item()
        per_label = (predicted == truth).float().mean().item()
        score = f"{exact:.1%} exact match, {per_label:.1%} per label"
    print(f"model parameters: {sum(p.numel() for p in model.parameters())}; {machine_description(torch.device('cpu'))}")
    print("| mode | training images (seed 0) | epochs | test (1000 images, seed 1) | training time | generation time |")
    print("|---|---:|---:|---|---:|---:|")
    print(f"| {args.mode} | {args.n} | {args.epochs} | {score} | {training:.0f} s | "
          f"{generation:.0f} s ({args.n + TEST_IMAGES} images) |")


if __name__ == "__main__":
    main()
