"""Which features FEM reads on a vision transformer: a small ViT trained on the synthetic benchmark.

The candidates (issue 13 item 2), all MLFEM with add fusion over every block:

* ``block``: the block outputs as they are (the residual stream, signed): ``layers="auto-signed"``;
* ``rectified``: the same, clamped at 0 before FEM: ``layers="auto"`` (the default, chosen from
  this comparison; ``"auto-rectified"`` is the same);
* ``mlp``: the hidden activations of each block's MLP after its GELU, the closest analogue of
  a CNN's post-ReLU maps: ``layers="auto-mlp"``; and ``mlp rectified``, the same clamped at 0
  (GELU lets small negative values through, which most channels' means are made of):
  ``layers="auto-mlp-rectified"``;

beside the transformer baselines (Grad-CAM, LayerCAM and CS-FEM through the same token
adapter, attention rollout) and the centre bias. Scored on the held-out *test* split of the
classifier's splits (images the classifier never trained or was selected on): PCC with the
GFDM, and how often the map's maximum lands on an object (the objects' masks are known).

The classifier is a timm ViT (patch 8 on 64x64 images: an 8x8 grid, 4 blocks, 64 channels,
4 heads) trained from scratch on the synthetic benchmark (multi-label) by
``mlfem train-classifier``'s API; the run resumes, and ``--classifier`` reuses a trained one.

    uv run python benchmarks/vit_features.py --out runs/vit-features

Prints the table (mean and 95 % normal-approximation interval over images) and writes
``OUT/vit_features.csv`` (one row per image and method) and ``OUT/vit_features.md``.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import statistics
import sys
from pathlib import Path

import torch

from mlfem import MLFEM
from mlfem.datasets.synthetic import SyntheticGaze
from mlfem.evaluation.model import TensorPreprocessing
from mlfem.explainers.registry import create_explainer
from mlfem.gaze import centre_bias
from mlfem.metrics import pcc
from mlfem.models import load_model

# name: the layers option that gives the reading
VARIANTS = {
    "mlfem block": "auto-signed",
    "mlfem rectified": "auto",  # the default chosen from this comparison (= "auto-rectified")
    "mlfem mlp": "auto-mlp",
    "mlfem mlp rectified": "auto-mlp-rectified",
}
BASELINES = ("gradcam", "layercam", "csfem", "rollout")
VIT = {"img_size": 64, "patch_size": 8, "depth": 4, "embed_dim": 64, "num_heads": 4}


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, required=True, help="output folder (the classifier is trained into OUT/classifier)")
    parser.add_argument("--classifier", type=Path, default=None, help="a trained classifier.safetensors to reuse")
    parser.add_argument("--n", type=int, default=1200, help="synthetic images (80/10/10 train/val/test)")
    parser.add_argument("--epochs", type=int, default=15)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--batch-size", type=int, default=16)
    return parser.parse_args()


def train(args: argparse.Namespace) -> Path:
    from mlfem.training import ClassifierConfig, train_classifier

    run = train_classifier(ClassifierConfig(
        dataset="synthetic", out=args.out / "classifier", dataset_options={"n": args.n, "seed": args.seed, "mode": "multi"},
        model="timm:vit_tiny_patch16_224", model_options=VIT, image_size=64, epochs=args.epochs, batch_size=32,
        lr=1e-3, augment="crop", seed=args.seed, resume=True,
    ))
    return run.checkpoint


def test_split(checkpoint: Path) -> SyntheticGaze:
    """The held-out split of the data the classifier was trained on (from its sidecar)."""
    dataset = json.loads(checkpoint.with_suffix(".json").read_text())["dataset"]
    return SyntheticGaze(**dataset["options"], splits=dataset["splits"], split="test")


def interval(values: list[float]) -> str:
    """Mean ± 1.96 standard errors over the finite values (PCC is NaN for a constant map)."""
    finite = [value for value in values if math.isfinite(value)]
    if len(finite) < 2:
        return "n/a"
    half = 1.96 * statistics.stdev(finite) / math.sqrt(len(finite))
    undefined = f" ({len(values) - len(finite)} constant maps)" if len(finite) < len(values) else ""
    return f"{statistics.fmean(finite):.3f} ± {half:.3f}{undefined}"


def main() -> int:
    args = parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(args.seed)
    checkpoint = args.classifier or train(args)
    loaded = load_model(str(checkpoint))
    model = loaded.model
    dataset = test_split(checkpoint)
    preprocess = TensorPreprocessing(loaded.preprocessing)
    methods = {name: MLFEM(model, layers=layers, fusion="add") for name, layers in VARIANTS.items()}
    methods.update({name: create_explainer(name, model) for name in BASELINES})
    print(f"{loaded.description}: {len(dataset)} held-out images; layers "
          + "; ".join(f"{name}: {m.layer_names[0]}..{m.layer_names[-1]}" for name, m in methods.items()
                      if isinstance(m, MLFEM)), file=sys.stderr)
    rows: list[dict[str, object]] = []
    correct = 0
    for start in range(0, len(dataset), args.batch_size):
        samples = [dataset[i] for i in range(start, min(start + args.batch_size, len(dataset)))]
        prepared = [preprocess(sample.image) for sample in samples]
        images = torch.stack([inputs for inputs, _ in prepared])
        with torch.no_grad():
            logits = model(images)
        correct += sum(int(logits[i].argmax()) in s.labels for i, s in enumerate(samples))
        maps = {name: method(images) for name, method in methods.items()}
        for i, sample in enumerate(samples):
            height, width = sample.gfdm.shape[-2:]
            objects = sample.extras["masks"].any(dim=0)
            scored = {name: prepared[i][1].to_original(m[i]) for name, m in maps.items()}
            scored["centre bias"] = centre_bias(height, width)
            for name, saliency in scored.items():
                peak = int(saliency.flatten().argmax())
                rows.append({
                    "image_id": sample.image_id, "method": name,
                    "pcc": float(pcc(saliency.float(), sample.gfdm.float())),
                    "peak_on_object": int(objects.flatten()[peak]),
                })
    with (args.out / "vit_features.csv").open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    names = list(dict.fromkeys(row["method"] for row in rows))
    lines = [
        f"{loaded.description}; {len(dataset)} held-out synthetic images; top-1 prediction is a "
        f"present class on {correct}/{len(dataset)}",
        "",
        "| method | PCC with the GFDM | peak on an object |",
        "|---|---|---|",
    ]
    for name in names:
        mine = [row for row in rows if row["method"] == name]
        hits = sum(int(row["peak_on_object"]) for row in mine)
        lines.append(f"| {name} | {interval([float(row['pcc']) for row in mine])} | "
                     f"{hits / len(mine):.3f} ({hits}/{len(mine)}) |")
    text = "\n".join(lines) + "\n"
    (args.out / "vit_features.md").write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
