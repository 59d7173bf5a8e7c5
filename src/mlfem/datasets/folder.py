"""``folder``: a documented layout for a user's own eye-tracking experiment.

Layout (``docs/datasets.md`` has the full description)::

    <root>/images/<name>.<ext>        images (sub-folders allowed)
    <root>/fixations.csv              header: image,observer,x,y[,duration]
    <root>/labels.csv      optional   header: image,label  (one row per label of an image)
    <root>/classes.txt     optional   class names, one per line: fixes the index order
    <root>/maps/<name>.png optional   your own density maps (for gfdm="shipped")

``image`` is the file name relative to ``images/`` (extension optional); ``observer`` any
string; ``x`` (column) and ``y`` (row) are 0-based pixels unless ``one_based=True``;
``duration`` in ms.  Rows keep the CSV order (scanpath order).  There is no default sigma:
pass ``sigma=`` in pixels (about one degree of visual angle; ``mlfem.gaze.sigma_from_geometry``
computes it from the screen and the viewing distance).
"""

from __future__ import annotations

import csv
import math
from pathlib import Path

import numpy as np

from . import _io
from ._base import GazeDataset
from .registry import register_dataset
from .schema import Gaze, Record

__all__ = ["Folder"]

LAYOUT = """\
<root>/images/<name>.<ext>      images (sub-folders allowed)
<root>/fixations.csv            header: image,observer,x,y[,duration]  (x, y: 0-based pixels)
<root>/labels.csv               optional, header: image,label  (one row per label)
<root>/classes.txt              optional, one class name per line (index order)
<root>/maps/<name>.png          optional, density maps for gfdm="shipped"
"""


def _read_csv(path: Path, required: tuple[str, ...]) -> tuple[list[str], list[list[str]]]:
    try:
        with path.open(newline="", encoding="utf-8-sig") as handle:
            rows = list(csv.reader(handle))
    except (OSError, UnicodeDecodeError, csv.Error) as error:
        raise ValueError(f"{path}: unreadable CSV: {error}") from error
    if not rows:
        raise ValueError(f"{path}: empty file (expected a header {','.join(required)})")
    header = [h.strip().lower() for h in rows[0]]
    missing = [c for c in required if c not in header]
    if missing:
        raise ValueError(f"{path}: header lacks column(s) {missing}; found {header}")
    return header, rows[1:]


@register_dataset
class Folder(GazeDataset):
    """A user's own images, fixations and (optional) labels and maps; see module docstring.

    Extra options:
        one_based: The CSV coordinates are 1-based (MATLAB style) instead of 0-based.
    """

    name = "folder"
    layout = LAYOUT
    default_sigma = None  # depends on the user's viewing geometry: must be given

    def __init__(self, root: str | Path, *, one_based: bool = False, **options: object) -> None:
        self.one_based = bool(one_based)
        super().__init__(root, **options)  # type: ignore[arg-type]

    def _index(self) -> list[Record]:
        images_dir = self._require(self.root / "images")
        fix_csv = self._require(self.root / "fixations.csv", "file")
        maps_dir = self.root / "maps"
        self.maps_location = maps_dir
        self.has_shipped_maps = maps_dir.is_dir()

        images: dict[str, Path] = {}
        for path in sorted(p for p in images_dir.rglob("*") if p.is_file()):
            if path.suffix.lower() not in _io.IMAGE_EXTENSIONS or path.name.startswith("."):
                continue
            image_id = path.relative_to(images_dir).with_suffix("").as_posix()
            if image_id in images:
                raise ValueError(f"folder: two images share the id {image_id!r}: {path}")
            images[image_id] = path
        by_name = {p.relative_to(images_dir).as_posix(): i for i, p in images.items()}

        gazes, bad = self._parse_fixations(fix_csv, images, by_name)
        labels = self._parse_labels(images, by_name)

        records = []
        for image_id, path in images.items():
            if image_id in bad:
                continue
            map_path = None
            if self.has_shipped_maps:
                candidates = [maps_dir / f"{image_id}{ext}" for ext in (".png", ".jpg", ".jpeg")]
                map_path = next((c for c in candidates if c.is_file()), candidates[0])
            records.append(
                Record(
                    image_id=image_id,
                    image_path=path,
                    labels=labels.get(image_id, ()),
                    gaze=gazes.get(image_id, Gaze(observers=[], durations=None)),
                    map_path=map_path,
                )
            )
        return records

    def _resolve(self, name: str, images: dict[str, Path], by_name: dict[str, str]) -> str | None:
        name = name.strip().replace("\\", "/")
        if name in by_name:
            return by_name[name]
        stem = name.rsplit(".", 1)[0] if "." in Path(name).name else name
        return stem if stem in images else None

    def _parse_fixations(
        self, path: Path, images: dict[str, Path], by_name: dict[str, str]
    ) -> tuple[dict[str, Gaze], set[str]]:
        header, rows = _read_csv(path, ("image", "observer", "x", "y"))
        col = {name: header.index(name) for name in header}
        has_duration = "duration" in col
        self.has_durations = has_duration
        # image id -> observer -> list of (x, y, duration); kept in CSV order.
        table: dict[str, dict[str, list[tuple[float, float, float]]]] = {}
        bad: dict[str, str] = {}
        unknown: dict[str, int] = {}
        for line, row in enumerate(rows, start=2):
            if not any(cell.strip() for cell in row):
                continue
            name = row[col["image"]] if len(row) > col["image"] else ""
            image_id = self._resolve(name, images, by_name)
            if image_id is None:
                unknown[name] = unknown.get(name, 0) + 1
                continue
            try:
                if len(row) < len(header):
                    raise ValueError(f"{len(row)} fields, header has {len(header)}")
                x = float(row[col["x"]])
                y = float(row[col["y"]])
                # An empty duration cell is "unknown" (NaN), not a malformed row.
                cell = row[col["duration"]].strip() if has_duration else ""
                d = float(cell) if cell else math.nan
                if not (math.isfinite(x) and math.isfinite(y)):
                    raise ValueError("non-finite coordinate")
            except ValueError as error:
                # One bad row makes the image's fixations incomplete: skip the whole image.
                bad.setdefault(image_id, f"fixations.csv line {line}: {error}")
                continue
            observer = row[col["observer"]].strip()
            table.setdefault(image_id, {}).setdefault(observer, []).append((x, y, d))
        for image_id, reason in bad.items():
            self._skip(image_id, path, reason)
        for name, count in unknown.items():
            self._skip(name, path, f"{count} fixation row(s) for an image not in images/")
        offset = 1.0 if self.one_based else 0.0
        gazes = {}
        for image_id, observers in table.items():
            arrays = [np.asarray(v, dtype=np.float64) for v in observers.values()]
            gazes[image_id] = Gaze(
                observers=[a[:, :2] - offset for a in arrays],
                durations=[a[:, 2] for a in arrays] if has_duration else None,
            )
        self.info["observers"] = sorted({o for obs in table.values() for o in obs})
        return gazes, set(bad)

    def _parse_labels(
        self, images: dict[str, Path], by_name: dict[str, str]
    ) -> dict[str, tuple[int, ...]]:
        labels_csv = self.root / "labels.csv"
        classes_txt = self.root / "classes.txt"
        declared: list[str] | None = None
        if classes_txt.is_file():
            declared = [
                line.strip() for line in classes_txt.read_text(encoding="utf-8").splitlines()
            ]
            declared = [c for c in declared if c]
            if len(set(declared)) != len(declared):
                raise ValueError(f"{classes_txt}: duplicate class names")
        if not labels_csv.is_file():
            self.class_names = declared or []
            return {}
        header, rows = _read_csv(labels_csv, ("image", "label"))
        ci, cl = header.index("image"), header.index("label")
        pairs: list[tuple[str, str]] = []
        for line, row in enumerate(rows, start=2):
            if not any(cell.strip() for cell in row):
                continue
            if len(row) <= max(ci, cl) or not row[cl].strip():
                raise ValueError(f"{labels_csv} line {line}: expected image,label")
            image_id = self._resolve(row[ci], images, by_name)
            if image_id is None:
                self._skip(row[ci], labels_csv, f"line {line}: label for an image not in images/")
                continue
            pairs.append((image_id, row[cl].strip()))
        names = declared if declared is not None else sorted({label for _, label in pairs})
        unknown = sorted({label for _, label in pairs} - set(names))
        if unknown:
            raise ValueError(f"{labels_csv}: classes not listed in {classes_txt}: {unknown}")
        self.class_names = list(names)
        index = {name: k for k, name in enumerate(self.class_names)}
        labels: dict[str, list[int]] = {}
        for image_id, label in pairs:
            ks = labels.setdefault(image_id, [])
            if index[label] not in ks:
                ks.append(index[label])
        self.multi_label = any(len(v) > 1 for v in labels.values())
        return {k: tuple(sorted(v)) for k, v in labels.items()}
