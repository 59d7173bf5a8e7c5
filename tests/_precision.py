"""How close half-precision explanation maps must be to float32 ones (test_explainers.py,
test_cli_explain_values.py)."""

from __future__ import annotations

import torch


def pcc_per_image(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Pearson correlation of each map of ``a`` (B, H, W) with the same map of ``b``."""
    a, b = a.flatten(1).double(), b.flatten(1).double()
    a, b = a - a.mean(1, keepdim=True), b - b.mean(1, keepdim=True)
    return (a * b).sum(1) / (a.norm(dim=1) * b.norm(dim=1))


# Half-precision maps against the float32 maps of the same weights and images. FEM thresholds
# each channel at mean + k std: activations rounded to 11 (float16) or 8 (bfloat16) significant
# bits move pixels lying near that threshold across it, so single pixels can differ by up to
# ~0.4 and no pixel-wise tolerance holds; the maps agree as wholes. Measured per image on TinyCNN
# (32 px) and ResNet-18 (96 px), random weights, seeds 0-4, fusion add: PCC with the float32 map
# >= 0.993 (float16) and >= 0.982 (bfloat16); mean absolute difference <= 0.007 (float16) and
# <= 0.023 (bfloat16); bfloat16 is about three times worse, as its 3 fewer bits predict.
# The bounds leave a margin over those and still fail a map that is merely similar.
HALF_PRECISION_BOUNDS = {torch.float16: (0.98, 0.015), torch.bfloat16: (0.95, 0.04)}
