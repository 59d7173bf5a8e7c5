"""Validation metrics of a classifier: accuracy, or for multi-label data mAP and the paper's
"every present class above 0.5" criterion."""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import Tensor

__all__ = ["average_precision", "classification_metrics"]


def average_precision(scores: np.ndarray, positives: np.ndarray) -> float:
    """Average precision of one class: ``sum_n (R_n - R_{n-1}) P_n`` over distinct score
    thresholds (tied scores form one threshold; scikit-learn's definition).
    NaN when there is no positive."""
    positives = positives.astype(bool)
    n_positive = int(positives.sum())
    if n_positive == 0:
        return math.nan
    order = np.argsort(-scores, kind="stable")
    sorted_scores, hits = scores[order], positives[order]
    true_pos = np.cumsum(hits)
    false_pos = np.cumsum(~hits)
    # Last position of each distinct score: a threshold includes all tied items.
    ends = np.r_[np.flatnonzero(np.diff(sorted_scores)), len(sorted_scores) - 1]
    precision = true_pos[ends] / (true_pos[ends] + false_pos[ends])
    recall = true_pos[ends] / n_positive
    return float(np.sum(np.diff(np.r_[0.0, recall]) * precision))


def classification_metrics(logits: Tensor, targets: Tensor, multi_label: bool) -> dict[str, float]:
    """Metrics of ``logits`` (N, C) against multi-hot ``targets`` (N, C).

    Single-label: ``accuracy`` (top-1, over images with a label).
    Multi-label (sigmoid outputs, threshold 0.5):

    * ``mAP``: mean over classes with at least one positive of the average precision;
    * ``all_present``: the paper's criterion, images whose every present class has an output
      above 0.5, over images with at least one class;
    * ``exact_match``: present classes above 0.5 *and* absent ones at or below it;
    * ``label_accuracy``: per (image, class) decision accuracy.
    """
    logits = logits.detach().float().cpu()
    targets = targets.detach().float().cpu()
    labelled = targets.sum(dim=1) > 0
    if not multi_label:
        if not labelled.any():
            return {"accuracy": math.nan}
        correct = logits[labelled].argmax(1) == targets[labelled].argmax(1)
        return {"accuracy": correct.float().mean().item()}
    probabilities = torch.sigmoid(logits)
    present = targets > 0.5
    above = probabilities > 0.5
    per_class = [
        average_precision(probabilities[:, c].numpy(), present[:, c].numpy())
        for c in range(targets.shape[1])
    ]
    scored = [ap for ap in per_class if not math.isnan(ap)]
    all_present = (above | ~present).all(dim=1)
    return {
        "mAP": float(np.mean(scored)) if scored else math.nan,
        "all_present": all_present[labelled].float().mean().item() if labelled.any() else math.nan,
        "exact_match": (above == present).all(dim=1).float().mean().item(),
        "label_accuracy": (above == present).float().mean().item(),
    }
