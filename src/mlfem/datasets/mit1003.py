"""MIT1003 (Judd et al. 2009): 1003 images (longest side 1024), 15 observers, free viewing.

Reads what the dataset ships:

- ``ALLSTIMULI/<name>.jpeg``;
- ``ALLFIXATIONMAPS/<name>_fixPts.jpg``: binary fixation points of all observers (white on
  black, JPEG-compressed): a pixel is a fixation when its grey level is >= ``points_threshold``
  (default 128; JPEG ringing around isolated points stays far below it).  Observers are pooled,
  so samples have one pseudo-observer and duplicates are already collapsed, as MIT's own maps;
- ``ALLFIXATIONMAPS/<name>_fixMap.jpg``: the authors' blurred maps (``gfdm="shipped"``).

The raw recordings ``DATA/<subject>/<name>.mat`` hold eye-tracker *samples*
(``<name>.DATA(1).eyeData``, 240 Hz); turning them into fixations needs the authors'
``checkFixations.m`` saccade detector, which is not reimplemented here (see docs/datasets.md).
MIT1003 has no class labels.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from . import _io
from ._base import GazeDataset
from .registry import register_dataset
from .schema import Gaze, Record

__all__ = ["MIT1003", "read_fixation_points"]

LAYOUT = """\
<root>/ALLSTIMULI/<name>.jpeg
<root>/ALLFIXATIONMAPS/<name>_fixPts.jpg    (binary fixation points, all observers)
<root>/ALLFIXATIONMAPS/<name>_fixMap.jpg    (blurred fixation map)
"""


def read_fixation_points(
    path: Path, threshold: float = 128.0
) -> tuple[np.ndarray, tuple[int, int]]:
    """0-based ``(x, y)`` of the pixels of a fixation-points image >= threshold, and its (H, W)."""
    grey = _io.read_gray(path)
    rows, cols = np.nonzero(grey >= threshold)
    return np.stack([cols, rows], axis=1).astype(np.float64), grey.shape


@register_dataset
class MIT1003(GazeDataset):
    """MIT1003 stimuli with pooled fixation points and the shipped fixation maps.

    Extra options:
        points_threshold: Grey level (0-255) at or above which a ``_fixPts`` pixel is a
            fixation.
    """

    name = "mit1003"
    aliases = ("mit",)
    layout = LAYOUT
    # MIT's fc = 8 cycles/image Gaussian at 1024 px is sigma ~ 24 px (docs/design-decisions.md §3).
    default_sigma = 24.0

    def __init__(
        self, root: str | Path, *, points_threshold: float = 128.0, **options: object
    ) -> None:
        if not 0 < points_threshold <= 255:
            raise ValueError("points_threshold must be in (0, 255]")
        self.points_threshold = float(points_threshold)
        super().__init__(root, **options)  # type: ignore[arg-type]

    def _index(self) -> list[Record]:
        stimuli = self._require(self.root / "ALLSTIMULI")
        maps = self._require(self.root / "ALLFIXATIONMAPS")
        self.maps_location = maps
        self.has_shipped_maps = True
        records = []
        for image in _io.list_images(stimuli):
            records.append(
                Record(
                    image_id=image.stem,
                    image_path=image,
                    gaze_paths=(maps / f"{image.stem}_fixPts.jpg",),
                    map_path=maps / f"{image.stem}_fixMap.jpg",
                )
            )
        if (self.root / "DATA").is_dir():
            self.info["raw_data"] = "DATA/ present but not read (pooled fixPts used)"
        return records

    def _parse_gaze(self, record: Record, size: tuple[int, int] | None) -> Gaze:
        points, shape = read_fixation_points(record.gaze_paths[0], self.points_threshold)
        if size is not None and shape != size:
            raise ValueError(
                f"fixation points image is {shape[1]}x{shape[0]}, stimulus is {size[1]}x{size[0]}"
            )
        return Gaze(observers=[points], durations=None)
