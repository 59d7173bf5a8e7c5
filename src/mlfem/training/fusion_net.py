"""Deprecated: moved to :mod:`mlfem.fusion.net` (importing this module warns)."""

from mlfem.training._moved import forward

forward(globals())
