"""One marker for the tests of CUDA code paths (the CPU paths are tested everywhere)."""

from __future__ import annotations

import pytest
import torch

requires_cuda = pytest.mark.skipif(
    not torch.cuda.is_available(),
    reason="no CUDA device on this machine; these tests check the GPU paths and run where one is present",
)
