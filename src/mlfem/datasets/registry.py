"""The dataset registry: dataset classes register with :func:`register_dataset`, which reads
the class's ``name`` (and ``aliases``); :func:`canonical_name` is the one place where two
spellings of a dataset's name are found to be the same dataset."""

from __future__ import annotations

from typing import TypeVar

__all__ = ["DATASETS", "canonical_name", "image_id_space", "register_dataset"]

T = TypeVar("T", bound=type)

#: Every registered dataset class by canonical name, in registration order.
DATASETS: dict[str, type] = {}
# The one alias table (canonical alias -> canonical name), filled from the classes' ``aliases``.
_ALIASES: dict[str, str] = {}


def _normalise(name: str) -> str:
    return name.strip().lower().replace("-", "").replace("_", "")


def register_dataset(cls: T) -> T:
    """Class decorator: register a dataset class under its ``name``.

    The class defines ``name`` (what :func:`mlfem.datasets.open_dataset` accepts) and may
    define ``aliases`` (other names for the same dataset, e.g. ``("mit",)``); neither is
    inherited from a registered parent, so a subclass (``OSIESample``) is a dataset of its own.
    """
    name = cls.__dict__.get("name")
    if not isinstance(name, str) or not name:
        raise TypeError(f"{cls.__name__} must define its own dataset name (a class attribute 'name')")
    key = _normalise(name)
    aliases = [_normalise(alias) for alias in cls.__dict__.get("aliases", ())]
    taken = [n for n in (key, *aliases) if n in _ALIASES or (n in DATASETS and DATASETS[n] is not cls)]
    if taken:
        raise ValueError(f"dataset name(s) {taken} already registered")
    DATASETS[key] = cls
    _ALIASES.update(dict.fromkeys(aliases, key))
    return cls


def canonical_name(name: str, *, strict: bool = False) -> str:
    """The registry key of a dataset name, so that two spellings of one dataset compare equal.

    Case, ``-`` and ``_`` are ignored and aliases are resolved: ``"MIT"``, ``"mit-1003"`` and
    ``"mit1003"`` all give ``"mit1003"``; ``"osie-sample"`` gives ``"osiesample"``.

    Args:
        name: a dataset name as a user, a CLI option or a checkpoint's record spells it.
        strict: raise ``ValueError`` for a name no registered dataset answers to.  By default
            such a name comes back normalised, so names recorded by other tools still compare.
    """
    key = _normalise(name)
    key = _ALIASES.get(key, key)
    if strict and key not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}; available: {', '.join(DATASETS)}")
    return key


def image_id_space(name: str) -> str:
    """The canonical name of the dataset whose image ids ``name``'s ids are: a dataset class
    that is a subset of another with the same ids (``osie-sample`` of ``osie``) says so with
    ``image_ids_of``. The leakage guard compares ids within one id space."""
    key = canonical_name(name)
    cls = DATASETS.get(key)
    of = cls.__dict__.get("image_ids_of") if cls is not None else None
    return canonical_name(of) if of else key
