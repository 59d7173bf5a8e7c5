"""Deprecated: moved to :mod:`mlfem.models.architectures` (importing this module warns)."""

from mlfem.training._moved import forward

forward(globals())
