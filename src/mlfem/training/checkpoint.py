"""Deprecated: moved to :mod:`mlfem.models.checkpoint` (importing this module warns)."""

from mlfem.training._moved import forward

forward(globals())
