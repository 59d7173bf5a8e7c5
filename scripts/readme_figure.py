"""The README's real explanation picture: docs/figures/real-explanations.jpg.

Three photos of the OSIE sample shipped with mlfem, explained by the pretrained EfficientNet-Lite0:
the photo with the network's top-1 class, the 15 observers' GFDM, MLFEM with the bundled NET,
MLFEM-ADD, MLFEM-ADD on rectified block outputs (docs/real-network.md), FEM (last block) and
Grad-CAM, each overlaid on the photo with its PCC against the
GFDM. Usage: ``uv run python scripts/readme_figure.py [OUT]``.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import torch

IMAGES = ("1004", "1028", "1031")


def main(out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from PIL import Image

    from mlfem import FEM, MLFEM
    from mlfem.datasets import open_dataset
    from mlfem.evaluation.model import TensorPreprocessing
    from mlfem.explainers.registry import create_explainer
    from mlfem.metrics import pcc
    from mlfem.models import load_model
    from mlfem.training import bundled_net_path
    from mlfem.visualize import overlay

    loaded = load_model("efficientnet_lite0", "imagenet")
    preprocess = TensorPreprocessing(loaded.preprocessing)
    dataset = open_dataset("osie-sample")
    samples = [dataset[i] for i in range(len(dataset)) if dataset[i].image_id in IMAGES]
    batch = torch.stack([preprocess(s.image)[0] for s in samples])
    placements = [preprocess(s.image)[1] for s in samples]
    with torch.inference_mode():
        logits = loaded.model(batch)
    with MLFEM(loaded.model, fusion=f"net:{bundled_net_path()}") as net, \
            MLFEM(loaded.model, fusion="add") as add, FEM(loaded.model) as fem, \
            MLFEM(loaded.model, fusion="add", rectify=True) as rectified, \
            create_explainer("gradcam", loaded.model) as gradcam:
        maps = {"MLFEM (NET)": net(batch), "MLFEM (ADD)": add(batch),
                "ADD, rectified": rectified(batch), "FEM": fem(batch),
                "Grad-CAM": gradcam(batch)}
    columns = 2 + len(maps)
    figure, axes = plt.subplots(len(samples), columns, figsize=(2.4 * columns, 1.95 * len(samples)), squeeze=False)
    for row, sample in enumerate(samples):
        photo = Image.fromarray(sample.image.permute(1, 2, 0).numpy())
        gfdm = torch.as_tensor(sample.gfdm, dtype=torch.float32)
        predicted = loaded.class_names[int(logits[row].argmax())]
        panels = [(f"{sample.image_id}: “{predicted}”", photo),
                  ("human gaze (15 observers)", overlay(photo, (gfdm / gfdm.max()).numpy()))]
        for name, batch_maps in maps.items():
            saliency = placements[row].to_original(batch_maps[row : row + 1].float().cpu())[0]
            score = float(pcc(saliency[None], gfdm[None])[0])
            panels.append((f"{name}, PCC {score:.2f}", overlay(photo, saliency.numpy())))
        for column, (title, picture) in enumerate(panels):
            axis = axes[row, column]
            axis.imshow(picture)
            axis.set_title(title, fontsize=8)
            axis.axis("off")
    figure.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(out, dpi=80, pil_kwargs={"quality": 85})
    print(f"wrote {out} ({out.stat().st_size / 1024:.0f} kB)")


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else Path("docs/figures/real-explanations.jpg"))
