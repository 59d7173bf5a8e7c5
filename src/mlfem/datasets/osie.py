"""OSIE (Xu et al. 2014): 700 images of 800x600, 15 observers, free viewing; no class labels.

Reads ``fixations.mat`` as the authors ship it: a cell ``fixations`` with one struct per
image, ``fixations{i}.img`` (file name) and ``fixations{i}.subjects{j}.fix_x / fix_y /
fix_duration`` (1-based float pixels, durations in ms).  The whole file is small (about
100 kB per 100 images), so it is parsed once when the dataset is opened.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from . import _io
from ._base import GazeDataset
from .registry import register_dataset
from .schema import Gaze, LayoutError, Record

__all__ = ["OSIE", "parse_osie_fixations"]

LAYOUT = """\
<root>/data/stimuli/<id>.jpg        (as in the authors' repository), or
<root>/stimuli/<id>.jpg             (flattened copy)
<root>/data/eye/fixations.mat       (resp. <root>/fixations.mat)
    fixations{i}.img = '<id>.jpg'
    fixations{i}.subjects{j}.fix_x, .fix_y  (1-based pixels), .fix_duration (ms)
"""


def _parse_subject(subject: object, where: str) -> tuple[np.ndarray, np.ndarray]:
    subject = _io.unwrap(subject)
    if isinstance(subject, np.ndarray) and subject.dtype.names is None and subject.size == 0:
        # An observer without data is stored as [] by MATLAB: no fixations.
        return np.zeros((0, 2)), np.zeros(0)
    xs = _io.mat_vector(_io.struct_field(subject, "fix_x"))
    ys = _io.mat_vector(_io.struct_field(subject, "fix_y"))
    points = _io.as_points(xs, ys, where) - 1.0  # MATLAB 1-based -> 0-based
    names = np.asarray(_io.unwrap(subject)).dtype.names or ()
    if "fix_duration" in names:
        durations = _io.mat_vector(_io.struct_field(subject, "fix_duration"))
        if durations.size != len(points):
            raise ValueError(f"{where}: {len(points)} fixations but {durations.size} durations")
    else:
        durations = np.full(len(points), np.nan)
    return points, durations


def parse_osie_fixations(mat_path: Path) -> tuple[dict[str, Gaze], list[tuple[str, str]]]:
    """Parse OSIE's ``fixations.mat``.

    Returns ``({image file name: Gaze}, [(image file name or entry, reason), ...])``: entries
    that cannot be parsed are reported, never partially kept.
    """
    contents = _io.loadmat(mat_path)
    if "fixations" not in contents:
        raise ValueError(f"{mat_path}: no variable 'fixations'")
    parsed: dict[str, Gaze] = {}
    bad: list[tuple[str, str]] = []
    for k, entry in enumerate(_io.cell_items(contents["fixations"]), start=1):
        where = f"fixations{{{k}}}"
        image = where  # reported under the entry index until the image name is known
        try:
            image = _io.mat_string(_io.struct_field(entry, "img")).strip()
            subjects = _io.cell_items(_io.struct_field(entry, "subjects"))
            observers, durations = [], []
            for j, subject in enumerate(subjects, start=1):
                points, durs = _parse_subject(subject, f"{where}.subjects{{{j}}}")
                observers.append(points)
                durations.append(durs)
        except ValueError as error:
            bad.append((image, f"{where}: {error}"))
            continue
        if image in parsed:
            bad.append((where, f"duplicate entry for {image}"))
            continue
        parsed[image] = Gaze(observers=observers, durations=durations)
    return parsed, bad


@register_dataset
class OSIE(GazeDataset):
    """OSIE stimuli and fixations (no classes: ``labels`` is empty for every sample)."""

    name = "osie"
    layout = LAYOUT
    default_sigma = 24.0  # the authors' blur for 800x600 maps (docs/design-decisions.md §3)

    def _index(self) -> list[Record]:
        official = self.root / "data" / "eye" / "fixations.mat"
        if official.is_file():
            stimuli, mat = self.root / "data" / "stimuli", official
        elif (self.root / "fixations.mat").is_file():
            stimuli, mat = self.root / "stimuli", self.root / "fixations.mat"
        else:
            raise LayoutError(self.name, official, LAYOUT)
        self._require(stimuli)
        try:
            gazes, bad = parse_osie_fixations(mat)
        except ValueError as error:
            raise ValueError(f"osie: cannot read {mat}: {error}") from None
        for image_name, reason in bad:
            self._skip(Path(image_name).stem, mat, reason)
        records = []
        for image_name, gaze in sorted(gazes.items()):
            path = stimuli / image_name
            if not path.is_file():
                self._skip(Path(image_name).stem, path, "image listed in fixations.mat is missing")
                continue
            records.append(Record(image_id=Path(image_name).stem, image_path=path, gaze=gaze))
        listed = set(gazes) | {image_name for image_name, _ in bad}
        for path in _io.list_images(stimuli):
            if path.name not in listed:
                self._skip(path.stem, path, "image has no entry in fixations.mat")
        self.info["fixations_file"] = str(mat)
        self.has_durations = True
        return records
