"""FEM's channel statistics on video: over the whole clip (the default) or per frame?

The original video FEM (Fuad et al., IPTA 2020) does not say over which axes a channel's
mean and standard deviation are taken. This script shows what the choice changes, on
synthetic clips where the answer is known: a static textured background (with a little
sensor noise per frame) and a coloured disk that appears in some frames only and moves
while it is there. For each clip it reports, for MLFEM (add fusion over every block) and
for FEM on the last block, with clip and with per-frame statistics:

  frames   share of the map's mass in the frames where the disk is (chance: the share
           of those frames in the clip)
  region   share of the map's mass inside the disk, over the clip (chance: the disk's
           share of the clip's volume)
  peak     share of frames without the disk whose brightest pixel is at least half the
           clip's maximum (how often a quiet frame lights up)
  pcc      Pearson correlation of the clip-statistics map with the per-frame one

on two networks: torchvision's r3d_18 with random weights, and a small 3-D CNN trained
(a fixed number of steps: a minute or two on 2 quiet cores) to tell clips with the disk
from clips without it, so that its features respond to the disk. Deterministic: seeded
data and training, one thread by default.

    uv run python benchmarks/video_statistics.py                 # 16 clips, 16x112x112
    uv run python benchmarks/video_statistics.py --clips 4 --train-steps 10 --size 64   # quick
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import load_text, machine_description  # noqa: E402


def make_clips(
    count: int, frames: int, size: int, generator: torch.Generator, with_disk: Tensor
) -> tuple[Tensor, Tensor]:
    """Clips (N, 3, T, H, W), normalised to zero mean and unit variance per channel, and the
    disk's masks (N, T, H, W). Clip ``i`` has a disk when ``with_disk[i]``: it appears for
    4 to T/2 consecutive frames and moves along a straight line while visible."""
    # Background: smooth grey texture plus fine grain, the same in every frame.
    coarse = torch.rand(count, 1, 1, 8, 8, generator=generator)
    texture = F.interpolate(coarse, size=(1, size, size), mode="trilinear", align_corners=False)
    texture = 0.3 + 0.4 * texture + 0.1 * torch.rand(count, 1, 1, size, size, generator=generator)
    clips = texture.expand(count, 3, frames, size, size).clone()
    clips += 0.02 * torch.randn(clips.shape, generator=generator)  # sensor noise per frame
    masks = torch.zeros(count, frames, size, size, dtype=torch.bool)
    rows = torch.arange(size).view(size, 1).float()
    columns = torch.arange(size).view(1, size).float()
    radius = size / 10
    colour = torch.tensor([0.9, 0.15, 0.1]).view(3, 1, 1)
    for index in range(count):
        if not with_disk[index]:
            continue
        length = int(torch.randint(4, frames // 2 + 1, (1,), generator=generator))
        first = int(torch.randint(0, frames - length + 1, (1,), generator=generator))
        start = radius + torch.rand(2, generator=generator) * (size - 2 * radius)
        end = radius + torch.rand(2, generator=generator) * (size - 2 * radius)
        for step, frame in enumerate(range(first, first + length)):
            y, x = start + (end - start) * step / max(length - 1, 1)
            disk = (rows - y) ** 2 + (columns - x) ** 2 <= radius**2
            masks[index, frame] = disk
            clips[index, :, frame] = torch.where(disk, colour, clips[index, :, frame])
    mean = clips.mean(dim=(0, 2, 3, 4), keepdim=True)
    std = clips.std(dim=(0, 2, 3, 4), keepdim=True)
    return (clips - mean) / std, masks


class SmallCNN3D(nn.Module):
    """Three 3-D convolution stages (16, 32, 64 channels, each halving H and W; the last two
    halving T too) and a linear head: clip in, two logits out (disk or not)."""

    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv3d(3, 16, 3, stride=(1, 2, 2), padding=1), nn.BatchNorm3d(16), nn.ReLU(),
            nn.Conv3d(16, 32, 3, stride=2, padding=1), nn.BatchNorm3d(32), nn.ReLU(),
            nn.Conv3d(32, 64, 3, stride=2, padding=1), nn.BatchNorm3d(64), nn.ReLU(),
        )
        self.head = nn.Linear(64, 2)

    def forward(self, clips: Tensor) -> Tensor:
        return self.head(self.features(clips).amax(dim=(2, 3, 4)))


def train_small_cnn(args: argparse.Namespace) -> tuple[nn.Module, float, float]:
    """Train on ``args.train_steps`` fresh batches of 8 clips (half with a disk); returns the
    model, its accuracy on 64 held-out clips and the training time in seconds."""
    torch.manual_seed(1)
    model = SmallCNN3D()
    optimiser = torch.optim.Adam(model.parameters(), lr=3e-3)
    generator = torch.Generator().manual_seed(2)
    started = time.perf_counter()
    model.train()
    for _ in range(args.train_steps):
        labels = torch.arange(8) % 2
        clips, _ = make_clips(8, args.frames, args.size, generator, labels.bool())
        loss = F.cross_entropy(model(clips), labels)
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
    seconds = time.perf_counter() - started
    model.eval()
    labels = torch.arange(64) % 2
    clips, _ = make_clips(64, args.frames, args.size, torch.Generator().manual_seed(3), labels.bool())
    with torch.inference_mode():
        accuracy = float((model(clips).argmax(1) == labels).float().mean())
    return model, accuracy, seconds


def pcc(first: Tensor, second: Tensor) -> float:
    a, b = first.flatten().double(), second.flatten().double()
    a, b = a - a.mean(), b - b.mean()
    denominator = float(a.norm() * b.norm())
    return float((a * b).sum()) / denominator if denominator > 0 else math.nan


def scores(maps: Tensor, masks: Tensor) -> dict[str, list[float]]:
    """Per-clip shares of the map's mass (see the module docs)."""
    out: dict[str, list[float]] = {"frames": [], "region": [], "peak": []}
    for clip_map, mask in zip(maps.double(), masks):
        total = float(clip_map.sum())
        present = mask.flatten(1).any(1)
        out["frames"].append(float(clip_map[present].sum()) / total if total > 0 else math.nan)
        out["region"].append(float(clip_map[mask].sum()) / total if total > 0 else math.nan)
        quiet_peaks = clip_map[~present].flatten(1).amax(1)
        out["peak"].append(float((quiet_peaks >= 0.5 * clip_map.max()).float().mean()))
    return out


def report(name: str, model: nn.Module, clips: Tensor, masks: Tensor) -> None:
    from mlfem import FEM, MLFEM

    present = masks.flatten(2).any(2).float()
    chance_frames = statistics.mean(present.mean(1).tolist())
    chance_region = statistics.mean(masks.flatten(1).float().mean(1).tolist())
    print(f"## {name}")
    print(f"chance: frames {chance_frames:.3f}, region {chance_region:.4f}")
    print()
    print("| explainer | statistics | frames | region | peak | pcc (clip vs per-frame) |")
    print("|---|---|---:|---:|---:|---:|")
    for label, build in (("MLFEM add", lambda pf: MLFEM(model, per_frame=pf)),
                         ("FEM last block", lambda pf: FEM(model, per_frame=pf))):
        maps = {}
        for per_frame in (False, True):
            explainer = build(per_frame)
            maps[per_frame] = torch.cat([explainer(clips[i : i + 4]) for i in range(0, len(clips), 4)])
        correlation = statistics.mean(pcc(a, b) for a, b in zip(maps[False], maps[True]))
        for per_frame, statistic in ((False, "clip"), (True, "per frame")):
            values = {key: statistics.mean(v) for key, v in scores(maps[per_frame], masks).items()}
            print(f"| {label} | {statistic} | {values['frames']:.3f} | {values['region']:.4f} | "
                  f"{values['peak']:.3f} | {correlation:.3f} |")
    print()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clips", type=int, default=16, help="evaluation clips (all with a disk)")
    parser.add_argument("--frames", type=int, default=16)
    parser.add_argument("--size", type=int, default=112)
    parser.add_argument("--train-steps", type=int, default=80, help="batches of 8 clips")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(f"Clip vs per-frame FEM statistics, {machine_description(torch.device('cpu'))}; "
          f"{load_text()}")
    print(f"{args.clips} synthetic clips of {args.frames}x{args.size}x{args.size}, each with a "
          "moving disk in 4 to T/2 frames over a static texture")
    print()
    clips, masks = make_clips(args.clips, args.frames, args.size, torch.Generator().manual_seed(0),
                              torch.ones(args.clips, dtype=torch.bool))
    import torchvision

    torch.manual_seed(0)
    report("r3d_18, random weights (8 blocks)", torchvision.models.video.r3d_18().eval(), clips, masks)
    model, accuracy, seconds = train_small_cnn(args)
    report(f"small 3-D CNN (3 stages) trained on disk / no disk: {args.train_steps} steps of 8 "
           f"clips in {seconds:.0f} s, held-out accuracy {accuracy:.2f}", model, clips, masks)


if __name__ == "__main__":
    main()
