"""Saliency metrics between explanation/saliency maps and human gaze, batched, any device.

Distribution metrics compare ``pred`` with a ground-truth density map ``gt`` (a GFDM):
:func:`pcc`, :func:`sim`, :func:`kld`. Location metrics score ``pred`` at fixations given as a
count map ``fix``: :func:`nss`, :func:`auc_judd`, :func:`auc_borji`, :func:`auc_pixels`,
:func:`sauc`, :func:`info_gain`. Inputs are (H, W) (0-d result) or (B, H, W) ((B,) result);
undefined values are NaN. :func:`evaluate` returns a whole :class:`MetricTable` for a batch.
A new metric is one module in this package whose function carries :func:`register_metric`
(every public module here is imported, so it registers); :func:`compute` dispatches through
:data:`METRICS`.
Conventions: ``docs/gaze.md`` and docs/design-decisions.md §4.
"""

from mlfem.metrics._common import EPS, match_size
from mlfem.metrics.distribution import SIM_VARIANTS, kld, pcc, sim
from mlfem.metrics.location import auc_borji, auc_judd, auc_pixels, info_gain, nss, sauc
from mlfem.metrics.registry import register_metric
from mlfem.metrics.table import METRICS, MetricSpec, MetricTable, compute, evaluate, resolve

__all__ = [
    "EPS",
    "METRICS",
    "SIM_VARIANTS",
    "MetricSpec",
    "MetricTable",
    "auc_borji",
    "auc_judd",
    "auc_pixels",
    "compute",
    "evaluate",
    "info_gain",
    "kld",
    "match_size",
    "nss",
    "pcc",
    "register_metric",
    "resolve",
    "sauc",
    "sim",
]
