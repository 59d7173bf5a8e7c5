"""Why MLFEM's fusions fail on a real network: a per-layer analysis of EfficientNet-Lite0.

Inputs (printed at start): the pretrained ``efficientnet_lite0`` (``mlfem.models.load_model``,
TF-Lite preprocessing, 224x224, ``fit="whole"``) and real eye tracking from the OSIE *training
pool* (``--root``, images 1041-1600, 15 observers, GFDM with sigma 24 px). Two disjoint image
sets are read, by position in the sorted image ids:

* the *choice* set (``--choice``, default the first 150 ids: 1041-1190), on which every table is
  measured and the remedy (the ``rectify`` option) was chosen;
* the *held-out* set (``--heldout``, default the last 100 ids: 1501-1600), used for nothing but
  the held-out check of that choice.

The OSIE test sample (images 1001-1040) is refused: nothing here may be tuned on it.

For every automatically discovered block (15 for Lite0) the script computes FEM under three
readings of the layer: ``signed`` (the block output as ``layers="auto"`` reads it: the default),
``rectified`` (the block output clamped at 0 before FEM: ``rectify=True``) and ``inner`` (the
post-ReLU6 expanded features inside the block, ``<block>.bn2``), for k in ``--ks``. It prints
per-layer PCC with the GFDM, how flat each min-max normalised map is, the share of channels with a
negative mean and of pixels with negative saliency, how many channels fire, the fusions
(max/add/top) over nested layer sets and over k, and writes PNG figures to ``--figures``.
PCC is computed on a 150x200 grid (the 600x800 GFDM average-pooled by 4, maps resized to it): a
cheap stand-in for ``mlfem evaluate``'s full-resolution PCC.

    uv run python benchmarks/layer_analysis.py --root ../shared/data/osie-train
"""

from __future__ import annotations

import argparse
import sys
import time
from collections import defaultdict
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch.nn import functional as F

from mlfem import MLFEM, fem_saliency, fuse
from mlfem.datasets import open_dataset
from mlfem.gaze import centre_bias
from mlfem.hooks import forward_hooks
from mlfem.metrics import pcc
from mlfem.models import load_model
from mlfem.normalize import minmax_normalize_, resize_maps

GRID = (150, 200)  # PCC grid: OSIE's 600x800 pooled by 4
VARIANTS = ("signed", "rectified", "inner")
OPS = ("max", "add", "top")
TEST_IDS = {str(i) for i in range(1001, 1041)}


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--root", type=Path, default=Path("../shared/data/osie-train"))
    parser.add_argument("--choice", type=int, default=150, help="first N image ids: the choice set")
    parser.add_argument("--heldout", type=int, default=100, help="last M image ids: the held-out set")
    parser.add_argument("--ks", default="0,1,2,3", help="FEM thresholds to compare (2 is the paper's)")
    parser.add_argument("--batch-size", type=int, default=10)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--figures", type=Path, default=Path("docs/figures"))
    parser.add_argument("--no-figures", action="store_true")
    return parser.parse_args()


def load_split(dataset, indices, preprocessing, keep_full: int = 0):
    """Model inputs (N, 3, 224, 224), GFDMs on the PCC grid (N, 150, 200) and the first
    ``keep_full`` GFDMs at full resolution (for the grid check)."""
    inputs, gfdms, full = [], [], []
    for index in indices:
        sample = dataset[index]
        if sample.image_id in TEST_IDS:
            raise SystemExit(f"image {sample.image_id} belongs to the OSIE test sample: refused")
        image = Image.fromarray(sample.image.permute(1, 2, 0).numpy())
        tensor, _ = preprocessing(image)
        inputs.append(tensor)
        gfdm = sample.gfdm[None, None]
        pooled = F.adaptive_avg_pool2d(gfdm, GRID)[0, 0] if gfdm.shape[-2:] != GRID else gfdm[0, 0]
        gfdms.append(pooled)
        if len(full) < keep_full:
            full.append(sample.gfdm)
    return torch.stack(inputs), torch.stack(gfdms), full


def to_grid(maps: torch.Tensor) -> torch.Tensor:
    """(..., 224, 224) normalised maps onto the PCC grid, as Placement.to_original does."""
    shape = maps.shape
    flat = maps.reshape(-1, *shape[-2:])
    return resize_maps(flat, GRID).clamp(0.0, 1.0).reshape(*shape[:-2], *GRID)


HEAD = "bn2"  # timm's head: conv_head (320 -> 1280, 1x1) + BN + ReLU6, not read by layers="auto"


def capture(model, inputs, blocks):
    """One forward pass; every block's output, its post-ReLU6 inner features (bn2), the head."""
    outputs: dict[str, torch.Tensor] = {}
    names = {name: name for name in blocks} | {f"{name}.bn2": f"{name}.bn2" for name in blocks}
    names[HEAD] = HEAD

    def keep(name):
        return lambda output: outputs.__setitem__(name, output.clone())

    with torch.inference_mode(), forward_hooks(model, {n: keep(n) for n in names}):
        model(inputs)
    return outputs


def normalised(raw: torch.Tensor, size=(224, 224)) -> torch.Tensor:
    return minmax_normalize_(resize_maps(raw.float(), size))


def analyse_split(model, blocks, inputs, gfdms, ks, batch_size, label):
    """All per-image measurements of one image set, as lists keyed by a tuple."""
    values: dict[tuple, list[float]] = defaultdict(list)
    example = None
    n_blocks = len(blocks)
    starts = list(range(0, n_blocks))
    started = time.perf_counter()
    for first in range(0, len(inputs), batch_size):
        batch, gaze = inputs[first : first + batch_size], gfdms[first : first + batch_size]
        acts = capture(model, batch, blocks)
        for variant in VARIANTS:
            for k in ks:
                per_layer = []
                for index, name in enumerate(blocks):
                    act = acts[f"{name}.bn2"] if variant == "inner" else acts[name]
                    if variant == "rectified":
                        act = act.clamp(min=0)
                    with torch.inference_mode():
                        raw = fem_saliency(act, k)
                        layer_map = normalised(raw)
                    per_layer.append(layer_map)
                    values[("pcc", variant, k, index)] += pcc(to_grid(layer_map), gaze).tolist()
                    if k == 2:
                        _layer_stats(values, variant, index, act, raw, layer_map)
                        if variant == "signed":
                            _sign_parts(values, index, act, gaze)
                maps = torch.stack(per_layer, dim=1)
                if variant == "rectified" and k == 2:
                    rectified_maps = maps
                for op in OPS:
                    values[("fusion", variant, k, op, 0)] += pcc(to_grid(fuse(maps, op)), gaze).tolist()
                if k == 2:
                    for start in starts[1:]:
                        for op in OPS:
                            fused = fuse(maps[:, start:], op)
                            values[("fusion", variant, k, op, start)] += pcc(to_grid(fused), gaze).tolist()
                    if example is None or variant not in example:
                        example = example or {}
                        example[variant] = maps[0].clone()
        with torch.inference_mode():
            head_map = normalised(fem_saliency(acts[HEAD], 2.0))
        values[("pcc", "head")] += pcc(to_grid(head_map), gaze).tolist()
        for op in OPS:  # what reading the head as well would add (not an option of mlfem)
            fused = fuse(torch.cat([rectified_maps, head_map[:, None]], dim=1), op)
            values[("head_fusion", op)] += pcc(to_grid(fused), gaze).tolist()
        done = min(first + batch_size, len(inputs))
        print(f"  {label}: {done}/{len(inputs)} images, {time.perf_counter() - started:.0f} s", file=sys.stderr)
    centre = centre_bias(*GRID)[None].expand(len(gfdms), *GRID)
    values[("centre",)] = pcc(centre, gfdms).tolist()
    return {key: float(np.nanmean(v)) for key, v in values.items()}, example


def _layer_stats(values, variant, index, act, raw, layer_map):
    """Flatness of the normalised map; channel signs, negative saliency, firing (k = 2)."""
    flat = act.flatten(2).float()
    mu = flat.mean(-1)
    sigma = flat.std(-1, correction=0)
    mask = flat >= (mu + 2 * sigma)[..., None]
    firing = mask.any(-1) & (sigma > 0)  # a constant channel's mask is all-or-nothing, no signal
    contribution = mu.abs() * mask.sum(-1)  # |mu_c| times its masked pixels: mass in the saliency
    negative_mass = (contribution * (mu < 0)).sum(-1) / contribution.sum(-1).clamp(min=1e-12)
    for name, value in (
        ("above_half", (layer_map > 0.5).float().mean((-2, -1))),
        ("map_std", layer_map.std((-2, -1), correction=0)),
        ("map_mean", layer_map.mean((-2, -1))),
        ("negative_mu", (mu < 0).float().mean(-1)),
        ("negative_mass", negative_mass),
        ("negative_pixels", (raw < 0).float().mean((-2, -1))),
        ("firing", firing.float().mean(-1)),
        ("masked", mask.float().mean((-2, -1))),
        ("negative_values", (flat < 0).float().mean((-2, -1))),
    ):
        values[(name, variant, index)] += value.tolist()
    values[("channels", variant, index)] += [float(act.shape[1])] * act.shape[0]


def _sign_parts(values, index, act, gaze) -> None:
    """PCC of the signed map's two parts: channels with mu > 0, and |contribution| of mu < 0."""
    with torch.inference_mode():
        mu = act.mean((2, 3), keepdim=True)
        # FEM on the whole layer, split by the sign of each channel's weight: the mask of a
        # channel depends only on that channel, so zeroing the weight of the others is exact.
        mask = act >= mu + 2.0 * act.std((2, 3), correction=0, keepdim=True)
        weighted = (mask * mu).float()
        parts = {
            "pcc_positive_part": weighted.clamp(min=0).sum(1),
            "pcc_negative_part": (-weighted).clamp(min=0).sum(1),
        }
    for name, part in parts.items():
        values[(name, index)] += pcc(to_grid(normalised(part)), gaze).tolist()


def check_library(model, blocks, inputs, gfdms, full) -> None:
    """The script's 'signed' and 'rectified' fusions are the library's MLFEM, default and option,
    and PCC on the 150x200 grid is close to PCC at the GFDM's own resolution."""
    batch = inputs[: len(full)]
    acts = capture(model, batch, blocks)
    for rectify in (False, True):
        maps = torch.stack(
            [normalised(fem_saliency(acts[n].clamp(min=0) if rectify else acts[n], 2.0)) for n in blocks], 1
        )
        for op in OPS:
            with MLFEM(model, fusion=op, rectify=rectify) as explainer:
                assert explainer.layer_names == blocks
                library = explainer(batch)
            gap = (library - fuse(maps, op)).abs().max().item()
            assert gap < 1e-4, (rectify, op, gap)
            at_full = pcc(resize_maps(library, full[0].shape).clamp(0, 1), torch.stack(full)).mean()
            on_grid = pcc(to_grid(library), gfdms[: len(full)]).mean()
            print(f"check: mlfem-{op}{' rectified' if rectify else ''} on {len(full)} images: "
                  f"PCC {on_grid:.3f} on the grid, {at_full:.3f} at 600x800")
    print("check: the script's signed/rectified fusions equal MLFEM(rectify=False/True) (max gap < 1e-4)")


def print_tables(results, blocks, ks, label, short_names) -> None:
    r = results
    print(f"\n## {label}: per layer (k = 2); PCC with the GFDM, mean over images")
    print("| # | block | C | PCC signed | PCC rectified | PCC inner | >0.5 signed | >0.5 rectified "
          "| std signed | std rectified | mu<0 | neg. mass | s<0 pixels | F<0 | firing signed | firing rectified |")
    print("|" + "---|" * 16)
    for i, name in enumerate(blocks):
        print(
            f"| {i} | {short_names[i]} | {r[('channels', 'signed', i)]:.0f} "
            f"| {r[('pcc', 'signed', 2.0, i)]:.3f} | {r[('pcc', 'rectified', 2.0, i)]:.3f} "
            f"| {r[('pcc', 'inner', 2.0, i)]:.3f} "
            f"| {r[('above_half', 'signed', i)]:.2f} | {r[('above_half', 'rectified', i)]:.2f} "
            f"| {r[('map_std', 'signed', i)]:.3f} | {r[('map_std', 'rectified', i)]:.3f} "
            f"| {r[('negative_mu', 'signed', i)]:.2f} | {r[('negative_mass', 'signed', i)]:.2f} "
            f"| {r[('negative_pixels', 'signed', i)]:.2f} | {r[('negative_values', 'signed', i)]:.2f} "
            f"| {r[('firing', 'signed', i)]:.2f} | {r[('firing', 'rectified', i)]:.2f} |"
        )
    print("\nsigned map split by the sign of mu (k = 2): PCC of the mu > 0 part and of the "
          "magnitude of the mu < 0 part (which the signed map subtracts)")
    print("| # | block | PCC mu>0 part | PCC |mu<0 part| |\n|---|---|---|---|")
    for i in range(len(blocks)):
        print(f"| {i} | {short_names[i]} | {r[('pcc_positive_part', i)]:.3f} | {r[('pcc_negative_part', i)]:.3f} |")
    print(f"\ncentre bias PCC: {r[('centre',)]:.3f}")
    print(f"FEM on the head ({HEAD}: conv_head + BN + ReLU6, 1280 channels, not read by auto): "
          f"PCC {r[('pcc', 'head')]:.3f}; rectified blocks + head fused: "
          + ", ".join(f"{op} {r[('head_fusion', op)]:.3f}" for op in OPS))
    print(f"\n## {label}: fusion PCC over blocks s..14 (k = 2); s = 0 is all blocks (the default)")
    print("| first block s | " + " | ".join(f"{op} {v}" for v in VARIANTS for op in OPS) + " |")
    print("|" + "---|" * (1 + len(VARIANTS) * len(OPS)))
    for start in range(len(blocks)):
        cells = [f"{r[('fusion', v, 2.0, op, start)]:.3f}" for v in VARIANTS for op in OPS]
        print(f"| {start} ({short_names[start]}) | " + " | ".join(cells) + " |")
    print(f"\n## {label}: fusion PCC over all blocks, by k")
    print("| k | " + " | ".join(f"{op} {v}" for v in VARIANTS for op in OPS) + " |")
    print("|" + "---|" * (1 + len(VARIANTS) * len(OPS)))
    for k in ks:
        cells = [f"{r[('fusion', v, k, op, 0)]:.3f}" for v in VARIANTS for op in OPS]
        print(f"| {k:g} | " + " | ".join(cells) + " |")


def choose(results) -> str:
    """The reading whose all-block fusions (max, add, top; k = 2) have the best mean PCC."""
    scores = {v: float(np.mean([results[("fusion", v, 2.0, op, 0)] for op in OPS])) for v in VARIANTS}
    print("\n## choice (choice set only): mean PCC of max/add/top over all blocks, k = 2")
    for variant, score in scores.items():
        print(f"- {variant}: {score:.3f}")
    best = max(scores, key=scores.get)
    print(f"best reading: {best}")
    return best


def figures(results, heldout, example, blocks, ks, short_names, out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out.mkdir(parents=True, exist_ok=True)
    idx = np.arange(len(blocks))
    colours = {"signed": "tab:red", "rectified": "tab:blue", "inner": "tab:green"}

    fig, axes = plt.subplots(1, 2, figsize=(11, 3.6))
    for v in VARIANTS:
        axes[0].plot(idx, [results[("pcc", v, 2.0, i)] for i in idx], "o-", color=colours[v], label=v)
    axes[0].axhline(results[("centre",)], color="grey", ls="--", label="centre bias")
    axes[0].axhline(0, color="black", lw=0.5)
    axes[0].set(xlabel="block", ylabel="mean PCC with GFDM", title="FEM per block (k = 2)")
    axes[0].set_xticks(idx, short_names, rotation=90, fontsize=7)
    axes[0].legend(fontsize=8)
    for v, marker in (("signed", "o-"), ("rectified", "s-")):
        axes[1].plot(idx, [results[("above_half", v, i)] for i in idx], marker, color=colours[v],
                     label=f"pixels > 0.5 ({v})")
    axes[1].plot(idx, [results[("negative_mu", "signed", i)] for i in idx], "^:", color="black",
                 label="channels with mu < 0 (signed)")
    axes[1].plot(idx, [results[("negative_mass", "signed", i)] for i in idx], "v:", color="tab:orange",
                 label="saliency mass from mu < 0 (signed)")
    axes[1].set(xlabel="block", ylabel="share", title="flatness and negative channels", ylim=(0, 1))
    axes[1].set_xticks(idx, short_names, rotation=90, fontsize=7)
    axes[1].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out / "lite0_per_layer.png", dpi=110)
    plt.close(fig)

    fig, axes = plt.subplots(1, 3, figsize=(12, 3.4), sharey=True)
    for ax, op in zip(axes, OPS):
        for v in VARIANTS:
            ax.plot(idx, [results[("fusion", v, 2.0, op, s)] for s in idx], "o-", color=colours[v], label=v)
        ax.axhline(results[("centre",)], color="grey", ls="--", label="centre bias")
        ax.set(title=f"mlfem-{op} over blocks s..14", xlabel="first block s")
        ax.set_xticks(idx, short_names, rotation=90, fontsize=7)
    axes[0].set_ylabel("mean PCC with GFDM")
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out / "lite0_fusion_layers.png", dpi=110)
    plt.close(fig)

    fig, axes = plt.subplots(1, 2, figsize=(10, 3.4), sharey=True)
    for ax, (res, title) in zip(axes, ((results, "choice set"), (heldout, "held-out set"))):
        for v in VARIANTS:
            for op, ls in zip(OPS, ("-", "--", ":")):
                ax.plot(ks, [res[("fusion", v, k, op, 0)] for k in ks], ls, marker="o", color=colours[v],
                        label=f"{op} {v}")
        ax.set(title=f"all 15 blocks, by k ({title})", xlabel="k")
    axes[0].set_ylabel("mean PCC with GFDM")
    axes[0].legend(fontsize=6, ncol=3)
    fig.tight_layout()
    fig.savefig(out / "lite0_k.png", dpi=110)
    plt.close(fig)

    rows = [v for v in VARIANTS if v in example]
    fig, axes = plt.subplots(len(rows), len(blocks) + len(OPS), figsize=(1.2 * (len(blocks) + 3), 1.35 * len(rows)))
    for r, v in enumerate(rows):
        maps = example[v]
        fused = {op: fuse(maps[None], op)[0] for op in OPS}
        panels = [(short_names[i], maps[i]) for i in range(len(blocks))] + [(op, fused[op]) for op in OPS]
        for c, (title, panel) in enumerate(panels):
            ax = axes[r, c]
            ax.imshow(panel.numpy(), cmap="jet", vmin=0, vmax=1)
            ax.set_xticks([]), ax.set_yticks([])
            ax.set_title(title, fontsize=6)
        axes[r, 0].set_ylabel(v, fontsize=8)
    fig.tight_layout()
    fig.savefig(out / "lite0_layer_maps.png", dpi=72)
    plt.close(fig)
    print(f"\nfigures written to {out}/lite0_*.png")


def main() -> int:
    args = parse_args()
    torch.set_num_threads(args.threads)
    ks = [float(k) for k in args.ks.split(",")]
    if 2.0 not in ks:
        ks.append(2.0)
    loaded = load_model("efficientnet_lite0", "imagenet")
    model, preprocessing = loaded.model, loaded.preprocessing.with_fit("whole")
    dataset = open_dataset("osie", args.root)
    ids = dataset.image_ids
    if set(ids) & TEST_IDS:
        raise SystemExit(f"{args.root} holds OSIE test images (1001-1040): use the training pool")
    if args.choice + args.heldout > len(ids):
        raise SystemExit(f"{args.root} has {len(ids)} images, fewer than --choice + --heldout")
    choice_idx = list(range(args.choice))
    heldout_idx = list(range(len(ids) - args.heldout, len(ids)))
    blocks = [spec.name for spec in MLFEM(model).layers]
    short_names = [name.removeprefix("blocks.") for name in blocks]
    print(f"model: {loaded.description}; {preprocessing.source}; fit whole, 224x224")
    print(f"blocks read by layers='auto' ({len(blocks)}): {', '.join(blocks)}")
    print(f"gaze: {args.root} (OSIE training pool), GFDM sigma 24 px, PCC on a {GRID[0]}x{GRID[1]} grid")
    print(f"choice set: {len(choice_idx)} images, ids {ids[choice_idx[0]]}-{ids[choice_idx[-1]]}")
    print(f"held-out set: {len(heldout_idx)} images, ids {ids[heldout_idx[0]]}-{ids[heldout_idx[-1]]}")
    print(f"k values: {ks}; torch {torch.__version__}, {args.threads} thread(s)")

    inputs, gfdms, full = load_split(dataset, choice_idx, preprocessing, keep_full=10)
    check_library(model, blocks, inputs, gfdms, full)
    results, example = analyse_split(model, blocks, inputs, gfdms, ks, args.batch_size, "choice")
    print_tables(results, blocks, ks, "choice set", short_names)
    choose(results)
    inputs, gfdms, _ = load_split(dataset, heldout_idx, preprocessing)
    heldout, _ = analyse_split(model, blocks, inputs, gfdms, ks, args.batch_size, "held-out")
    print_tables(heldout, blocks, ks, "HELD-OUT CHECK (images not used for the choice)", short_names)
    if not args.no_figures:
        figures(results, heldout, example, blocks, ks, short_names, args.figures)
    return 0


if __name__ == "__main__":
    sys.exit(main())
