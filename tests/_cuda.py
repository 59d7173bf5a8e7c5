"""One marker for the tests of CUDA code paths (the CPU paths are tested everywhere)."""

from __future__ import annotations

from typing import TypeVar

import pytest
import torch

_Test = TypeVar("_Test")

_NO_CUDA = "no CUDA device on this machine; these tests check the GPU paths and run where one is present"


def requires_cuda(test: _Test) -> _Test:
    """Skip ``test`` without a CUDA device. CI has no GPU, so the skip is allowed there too
    (``ci_may_skip``, see ``tests/_strict_ci.py``): the only skip strict CI accepts."""
    allowed = pytest.mark.ci_may_skip(reason="CI has no GPU; the CUDA paths are checked on a GPU machine")
    return allowed(pytest.mark.skipif(not torch.cuda.is_available(), reason=_NO_CUDA)(test))
