"""The OSIE sample that ships inside the package: 12 real images with 15 observers each.

It lets a clone without any downloaded dataset run real-data examples, the demo and the tests.
Same layout and reader as :class:`~mlfem.datasets.osie.OSIE`; only the default root differs.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .osie import OSIE
from .registry import register_dataset

__all__ = ["OSIESample", "bundled_osie_root"]


def bundled_osie_root() -> Path:
    """Folder of the bundled sample (``stimuli/``, ``fixations.mat``, ``LICENSE``)."""
    return Path(__file__).resolve().parent.parent / "resources" / "osie_sample"


@register_dataset
class OSIESample(OSIE):
    """OSIE images 1001, 1004, ..., 1034 with their fixations, MIT licence (see the folder's
    README). ``root`` defaults to the copy installed with mlfem."""

    name = "osie-sample"
    #: Its images keep their OSIE ids: a checkpoint trained on OSIE may have seen them.
    image_ids_of = "osie"

    @classmethod
    def default_root(cls) -> Path:
        """The copy installed with mlfem (:func:`bundled_osie_root`)."""
        return bundled_osie_root()

    def __init__(self, root: str | Path | None = None, **options: Any) -> None:
        super().__init__(self.default_root() if root is None else root, **options)
