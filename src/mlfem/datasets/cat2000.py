"""CAT2000 (Borji & Itti 2015): 20 categories x 100 training images at 1920x1080.

Reads the training set as shipped: ``trainSet/Stimuli/<Category>/NNN.jpg``,
``trainSet/FIXATIONMAPS/<Category>/NNN.jpg`` (the authors' blurred maps) and
``trainSet/FIXATIONLOCS/<Category>/NNN.mat`` (variable ``fixLocs``: a binary HxW map, 1 at
every fixated pixel of all observers).  ``Output`` folders (saliency model outputs shipped in
some copies) are ignored.  The category is the class (single label).

``fixLocs`` pools all observers and keeps one count per fixated pixel, so CAT2000 samples
have a single pseudo-observer whose fixations are the fixated pixels (row r, column c ->
``(x, y) = (c, r)``; MATLAB's 1-based indices are already absorbed by the array position).
The test set has no fixations and is not read.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from . import _io
from ._base import GazeDataset
from .registry import register_dataset
from .schema import Gaze, Record

__all__ = ["CAT2000", "CATEGORIES", "read_fixlocs"]

CATEGORIES = (
    "Action", "Affective", "Art", "BlackWhite", "Cartoon", "Fractal", "Indoor", "Inverted",
    "Jumbled", "LineDrawing", "LowResolution", "Noisy", "Object", "OutdoorManMade",
    "OutdoorNatural", "Pattern", "Random", "Satelite", "Sketch", "Social",
)  # fmt: skip

LAYOUT = """\
<root>/trainSet/Stimuli/<Category>/NNN.jpg          (or <root> = the trainSet folder)
<root>/trainSet/FIXATIONMAPS/<Category>/NNN.jpg
<root>/trainSet/FIXATIONLOCS/<Category>/NNN.mat     (variable fixLocs, binary HxW)
Categories: """ + ", ".join(CATEGORIES) + "\n"


def read_fixlocs(path: Path) -> tuple[np.ndarray, tuple[int, int]]:
    """0-based ``(x, y)`` of the non-zero pixels of a ``fixLocs`` map (row-major), and (H, W)."""
    contents = _io.loadmat(path)
    if "fixLocs" not in contents:
        raise ValueError("no variable 'fixLocs'")
    locs = np.asarray(contents["fixLocs"])
    if locs.ndim != 2 or locs.dtype.kind not in "biuf":
        raise ValueError(f"fixLocs must be a 2-D numeric array, got {locs.dtype} {locs.shape}")
    rows, cols = np.nonzero(locs)
    return np.stack([cols, rows], axis=1).astype(np.float64), (locs.shape[0], locs.shape[1])


@register_dataset
class CAT2000(GazeDataset):
    """CAT2000 training set; ``category`` and the single class label are the category."""

    name = "cat2000"
    aliases = ("cat",)
    layout = LAYOUT
    # fc = 8 cycles/image at 1920 px wide, as in the MIT benchmark code (docs/design-decisions.md §3).
    default_sigma = 48.0

    def _index(self) -> list[Record]:
        base = self.root / "trainSet" if (self.root / "trainSet").is_dir() else self.root
        stimuli = self._require(base / "Stimuli")
        maps = base / "FIXATIONMAPS"
        locs = self._require(base / "FIXATIONLOCS")
        self.maps_location = maps
        self.has_shipped_maps = maps.is_dir()

        found = sorted(
            d.name for d in stimuli.iterdir() if d.is_dir() and d.name.lower() != "output"
        )
        if not found:
            raise ValueError(f"cat2000: no category folders in {stimuli}")
        # Fixed canonical order so class indices do not depend on which folders are present;
        # unexpected folders are appended (sorted).
        self.class_names = list(CATEGORIES) + [c for c in found if c not in CATEGORIES]
        index = {c: k for k, c in enumerate(self.class_names)}
        records = []
        for category in found:
            for image in _io.list_images(stimuli / category):
                stem = image.stem
                records.append(
                    Record(
                        image_id=f"{category}/{stem}",
                        image_path=image,
                        labels=(index[category],),
                        category=category,
                        gaze_paths=(locs / category / f"{stem}.mat",),
                        map_path=maps / category / f"{stem}.jpg",
                    )
                )
        self.info["categories_found"] = found
        return records

    def _parse_gaze(self, record: Record, size: tuple[int, int] | None) -> Gaze:
        points, shape = read_fixlocs(record.gaze_paths[0])
        if size is not None and shape != size:
            raise ValueError(f"fixLocs is {shape[1]}x{shape[0]}, stimulus is {size[1]}x{size[0]}")
        return Gaze(observers=[points], durations=None)
