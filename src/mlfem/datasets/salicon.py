"""SALICON (Jiang et al. 2015): 640x480 COCO-2014 images (train 10 000, val 5 000), mouse-tracked.

Reads, per official subset (``train``, ``val``):

- images ``images/<subset>/COCO_<subset>2014_<12 digits>.jpg``;
- fixations, either the COCO-style JSON ``fixations_<subset>2014.json`` (in the root,
  ``fixations/`` or ``annotations/``): ``annotations[]`` with ``image_id``, ``worker_id`` and
  ``fixations``; or the LSUN-challenge ``.mat`` files ``fixations/<subset>/<name>.mat`` with
  ``gaze(k).fixations`` (``[x, y]``, 1-based) per observer ``k``;
- shipped maps ``maps/<subset>/<name>.png`` (optional; ``gfdm="shipped"``);
- multi-labels from COCO ``instances_<subset>2014.json`` (root or ``annotations/``; optional):
  the image id is the number in the file name, the 80 categories (non-contiguous COCO ids) are
  indexed 0..79 in increasing id order.  Images without instances have no label.

JSON coordinate conventions: the official API reads ``[row, col]`` 1-based integers (it does
``map[row - 1][col - 1] = 1``); an older release stored ``[x, y]`` floats.  ``json_coords``:
``"rowcol"`` (1-based row, col), ``"xy"`` (0-based x, y), ``"xy1"`` (1-based x, y), or
``"auto"``: ``"xy"`` when any value is fractional or any first value exceeds the image height,
else ``"rowcol"``; the decision is recorded in ``dataset.info["json_coords"]``.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from . import _io
from ._base import GazeDataset
from .registry import register_dataset
from .schema import Gaze, LayoutError, Record

__all__ = ["SALICON", "detect_json_coords", "read_lsun_mat"]

SUBSETS = ("train", "val")
JSON_COORDS = ("auto", "rowcol", "xy", "xy1")

LAYOUT = """\
<root>/images/{train,val}/COCO_{train,val}2014_<12 digits>.jpg
fixations, one of:
  <root>/fixations_{train,val}2014.json        (also in <root>/fixations/ or <root>/annotations/)
  <root>/fixations/{train,val}/<image name>.mat (LSUN: gaze(k).fixations = [x y], 1-based)
<root>/maps/{train,val}/<image name>.png        (optional, for gfdm="shipped")
<root>/instances_{train,val}2014.json           (optional COCO labels; or <root>/annotations/)
"""


def _pairs(raw: Any) -> np.ndarray | None:
    """An annotation's fixations as an ``(N, 2)`` array, or ``None`` when malformed."""
    try:
        fix = np.asarray(raw if raw is not None else [], dtype=np.float64)
    except (ValueError, TypeError):
        return None
    if fix.size == 0:
        return np.zeros((0, 2))
    if fix.ndim != 2 or fix.shape[1] != 2:
        return None
    return fix


def detect_json_coords(
    annotations: Sequence[dict[str, Any]], heights: dict[Any, int]
) -> tuple[str, bool]:
    """Guess the JSON convention; returns ``(convention, ambiguous)``.

    Malformed annotations are ignored here (they are reported when the images are indexed).
    """
    arrays = [(ann.get("image_id"), _pairs(ann.get("fixations"))) for ann in annotations]
    arrays = [(key, fix) for key, fix in arrays if fix is not None and fix.size]
    for key, fix in arrays:
        if np.any(fix != np.round(fix)) or fix[:, 0].max() > heights.get(key, 480):
            return "xy", False  # fractional values, or a first value beyond the height
    for key, fix in arrays:
        if fix[:, 1].max() > heights.get(key, 480):
            return "rowcol", False  # a second value beyond the height can only be a column
    return "rowcol", True


def _json_points(raw: Any, convention: str) -> np.ndarray:
    fix = _pairs(raw)
    if fix is None:
        raise ValueError("fixations must be a list of [a, b] pairs of numbers")
    if not np.all(np.isfinite(fix)):
        raise ValueError("non-finite fixation coordinates")
    if convention == "rowcol":
        return fix[:, ::-1] - 1.0
    if convention == "xy1":
        return fix - 1.0
    return fix.copy()


def read_lsun_mat(path: Path) -> tuple[list[np.ndarray], tuple[int, int] | None]:
    """Observers' 0-based ``(x, y)`` fixations from an LSUN ``.mat``, and its ``resolution``."""
    contents = _io.loadmat(path)
    if "gaze" not in contents:
        raise ValueError("no variable 'gaze'")
    observers = []
    for k, entry in enumerate(_io.cell_items(contents["gaze"]), start=1):
        fix = np.asarray(_io.struct_field(entry, "fixations"), dtype=np.float64)
        if fix.size == 0:
            observers.append(np.zeros((0, 2)))
            continue
        if fix.ndim != 2 or fix.shape[1] != 2:
            raise ValueError(f"gaze({k}).fixations must be Nx2, got {fix.shape}")
        if not np.all(np.isfinite(fix)):
            raise ValueError(f"gaze({k}).fixations has non-finite values")
        observers.append(fix - 1.0)  # [x, y], 1-based
    resolution = None
    if "resolution" in contents:
        res = _io.mat_vector(contents["resolution"])
        if res.size == 2:
            resolution = (int(res[0]), int(res[1]))  # [height width]
    return observers, resolution


def _find(root: Path, name: str, folders: Sequence[str]) -> Path | None:
    for folder in folders:
        path = root / folder / name if folder else root / name
        if path.is_file():
            return path
    return None


@register_dataset
class SALICON(GazeDataset):
    """SALICON images, fixations (JSON or LSUN .mat), shipped maps and COCO multi-labels.

    Extra options:
        subsets: Official subsets to read, ``"train"``, ``"val"`` or both (default).
        fixation_format: ``"auto"`` (JSON when present, else ``.mat``), ``"json"``, ``"mat"``.
        json_coords: JSON coordinate convention, see the module docstring.
        instances: Path of a COCO instances JSON (single subset) or ``False`` to ignore labels;
            ``None`` looks for ``instances_<subset>2014.json``.
    """

    name = "salicon"
    layout = LAYOUT
    default_sigma = 19.0  # the SALICON API's blur for 640x480 maps (docs/design-decisions.md §3)
    multi_label = True

    def __init__(
        self,
        root: str | Path,
        *,
        subsets: str | Sequence[str] = SUBSETS,
        fixation_format: str = "auto",
        json_coords: str = "auto",
        instances: str | Path | bool | None = None,
        **options: object,
    ) -> None:
        subsets = (subsets,) if isinstance(subsets, str) else tuple(subsets)
        if not subsets or any(s not in SUBSETS for s in subsets):
            raise ValueError(f"subsets must be among {SUBSETS}, got {subsets}")
        if fixation_format not in ("auto", "json", "mat"):
            raise ValueError("fixation_format must be 'auto', 'json' or 'mat'")
        if json_coords not in JSON_COORDS:
            raise ValueError(f"json_coords must be one of {JSON_COORDS}")
        self.subsets = subsets
        self.fixation_format = fixation_format
        self.json_coords = json_coords
        self.instances = instances
        super().__init__(root, **options)  # type: ignore[arg-type]

    # ----------------------------------------------------------------- index
    def _index(self) -> list[Record]:
        self._require(self.root / "images")
        maps_root = self.root / "maps"
        self.maps_location = maps_root
        self.has_shipped_maps = all((maps_root / s).is_dir() for s in self.subsets)
        self.class_names, labels_by_subset = self._read_labels()
        self.info["fixation_format"] = {}
        self.info["json_coords"] = {}
        records: list[Record] = []
        for subset in self.subsets:
            images = self._require(self.root / "images" / subset)
            json_path = _find(
                self.root, f"fixations_{subset}2014.json", ("", "fixations", "annotations")
            )
            mat_dir = self.root / "fixations" / subset
            fmt = self.fixation_format
            if fmt == "auto":
                fmt = "json" if json_path else "mat" if mat_dir.is_dir() else "missing"
            if fmt == "json" and json_path is None:
                raise LayoutError(self.name, self.root / f"fixations_{subset}2014.json", LAYOUT)
            if fmt in ("mat", "missing"):
                self._require(mat_dir)
            self.info["fixation_format"][subset] = fmt
            labels = labels_by_subset.get(subset)
            if fmt == "json":
                assert json_path is not None
                records += self._index_json(subset, images, json_path, labels)
            else:
                records += self._index_mat(subset, images, mat_dir, labels)
        return records

    def _labels_for(self, image: Path, labels: dict[int, tuple[int, ...]] | None) -> tuple:
        if labels is None:
            return ()
        try:
            number = int(image.stem.rsplit("_", 1)[-1])
        except ValueError:
            return ()
        return labels.get(number, ())

    def _record(
        self, subset: str, image: Path, labels: dict[int, tuple[int, ...]] | None, **kw: Any
    ) -> Record:
        return Record(
            image_id=image.stem,
            image_path=image,
            labels=self._labels_for(image, labels),
            split=subset,
            map_path=self.root / "maps" / subset / f"{image.stem}.png",
            **kw,
        )

    def _index_mat(
        self, subset: str, images: Path, mat_dir: Path, labels: dict | None
    ) -> list[Record]:
        return [
            self._record(subset, image, labels, gaze_paths=(mat_dir / f"{image.stem}.mat",))
            for image in _io.list_images(images)
        ]

    def _index_json(
        self, subset: str, images: Path, json_path: Path, labels: dict | None
    ) -> list[Record]:
        try:
            data = json.loads(json_path.read_text(encoding="utf-8"))
            entries = {img["id"]: img for img in data["images"]}
            annotations = data["annotations"]
        except (OSError, ValueError, KeyError, TypeError) as error:
            raise ValueError(f"salicon: cannot read {json_path}: {error}") from None
        heights = {k: int(v.get("height", 480)) for k, v in entries.items()}
        convention, ambiguous = self.json_coords, False
        if convention == "auto":
            convention, ambiguous = detect_json_coords(annotations, heights)
        self.info["json_coords"][subset] = convention + (" (assumed)" if ambiguous else "")

        by_image: dict[Any, list[dict[str, Any]]] = {}
        for ann in annotations:
            by_image.setdefault(ann.get("image_id"), []).append(ann)
        records = []
        listed = set()
        for image_key, entry in sorted(entries.items(), key=lambda kv: str(kv[1]["file_name"])):
            path = images / entry["file_name"]
            listed.add(entry["file_name"])
            if not path.is_file():
                self._skip(path.stem, path, "image listed in the fixations JSON is missing")
                continue
            anns = sorted(
                by_image.get(image_key, []),
                key=lambda a: (str(a.get("worker_id", "")), str(a.get("id", ""))),
            )
            try:
                observers = [_json_points(a.get("fixations", []), convention) for a in anns]
            except (ValueError, TypeError) as error:
                self._skip(path.stem, json_path, f"malformed fixations: {error}")
                continue
            if not anns:
                self._skip(path.stem, json_path, "no fixation annotations for this image")
                continue
            records.append(self._record(subset, path, labels, gaze=Gaze(observers=observers)))
        for image in _io.list_images(images):
            if image.name not in listed:
                self._skip(image.stem, image, "image is not listed in the fixations JSON")
        return records

    def _read_labels(self) -> tuple[list[str], dict[str, dict[int, tuple[int, ...]]]]:
        if self.instances is False:
            return [], {}
        paths: dict[str, Path] = {}
        if self.instances not in (None, True):
            if len(self.subsets) != 1:
                raise ValueError("instances=<path> needs a single subset (subsets='train'|'val')")
            path = Path(self.instances)  # type: ignore[arg-type]
            paths[self.subsets[0]] = self._require(path, "file")
        else:
            for subset in self.subsets:
                found = _find(self.root, f"instances_{subset}2014.json", ("", "annotations"))
                if found is not None:
                    paths[subset] = found
                elif self.instances is True:
                    raise LayoutError(self.name, self.root / f"instances_{subset}2014.json", LAYOUT)
        if not paths:
            self.info["labels"] = "none (no instances_<subset>2014.json found)"
            return [], {}
        class_names: list[str] | None = None
        by_subset: dict[str, dict[int, tuple[int, ...]]] = {}
        for subset, path in paths.items():
            try:
                data = json.loads(path.read_text(encoding="utf-8"))
                categories = sorted(data["categories"], key=lambda c: int(c["id"]))
                names = [str(c["name"]) for c in categories]
                index = {int(c["id"]): k for k, c in enumerate(categories)}
                per_image: dict[int, set[int]] = {}
                for ann in data["annotations"]:
                    per_image.setdefault(int(ann["image_id"]), set()).add(
                        index[int(ann["category_id"])]
                    )
            except (OSError, ValueError, KeyError, TypeError) as error:
                raise ValueError(f"salicon: cannot read COCO instances {path}: {error}") from None
            if class_names is not None and names != class_names:
                raise ValueError(f"salicon: {path} has different categories than the other subset")
            class_names = names
            by_subset[subset] = {k: tuple(sorted(v)) for k, v in per_image.items()}
        self.info["labels"] = {s: str(p) for s, p in paths.items()}
        missing = [s for s in self.subsets if s not in by_subset]
        if missing:
            raise LayoutError(self.name, self.root / f"instances_{missing[0]}2014.json", LAYOUT)
        return class_names or [], by_subset

    # ----------------------------------------------------------------- lazy parsing
    def _parse_gaze(self, record: Record, size: tuple[int, int] | None) -> Gaze:
        observers, resolution = read_lsun_mat(record.gaze_paths[0])
        if size is not None and resolution is not None and resolution != size:
            raise ValueError(f"resolution {resolution} does not match the image size {size}")
        return Gaze(observers=observers)
