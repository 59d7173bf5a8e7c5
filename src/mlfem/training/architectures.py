"""Deprecated: moved to :mod:`mlfem.models.architectures` (importing this module warns);
``build_classifier`` to :mod:`mlfem.models.starting`."""

from mlfem.training._moved import forward

forward(globals())
from mlfem.models.starting import build_classifier  # noqa: E402

__all__ = [*__all__, "build_classifier"]  # noqa: F821 - set by forward()
