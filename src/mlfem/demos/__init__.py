"""``mlfem demo``: the paper's protocol end to end, on real gaze (default) or on the synthetic
benchmark.

* :func:`run_real_demo`: the OSIE sample shipped with mlfem, the pretrained EfficientNet-Lite0
  and the NET fusion trained for it on other OSIE images, against 15 real observers.
* :func:`run_synthetic_demo`: generated images and simulated observers; trains its own
  classifier and NET (the version CI runs with ``quick=True``).
"""

from mlfem.demos._steps import DemoResult
from mlfem.demos.real import run_real_demo
from mlfem.demos.synthetic import run_synthetic_demo

__all__ = ["DemoResult", "run_real_demo", "run_synthetic_demo"]
