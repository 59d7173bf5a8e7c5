"""Read per-observer fixations from disk: the OSIE layout and a plain CSV.

* OSIE: a folder with ``stimuli/<id>.jpg`` and ``fixations.mat`` (also accepted: the full
  release's ``data/stimuli`` and ``data/eye/fixations.mat``). ``fixations{i}.img`` names the
  stimulus, ``fixations{i}.subjects{j}.fix_x / fix_y / fix_duration`` are one observer's
  fixations in 1-based pixels (converted to 0-based here) and milliseconds.
* CSV: a header with ``image, observer, x, y`` and optionally ``duration``, ``width``,
  ``height``; 0-based pixel coordinates unless ``one_based=True``.

Every problem raises :class:`GazeDataError` naming the file and what was expected.
"""

from __future__ import annotations

import csv
import math
from pathlib import Path

import numpy as np

from mlfem.gaze.fixations import Fixations

__all__ = ["GazeDataError", "find_osie", "image_size", "read_fixation_csv", "read_osie"]

_IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")


class GazeDataError(ValueError):
    """An input file is missing or not in the expected layout."""


def image_size(path: Path) -> tuple[int, int]:
    """``(height, width)`` of an image file (reads the header only)."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as image:
            width, height = image.size
    except (OSError, UnidentifiedImageError) as error:
        raise GazeDataError(f"{path}: cannot read the image size ({error})") from error
    return height, width


def find_osie(folder: str | Path) -> tuple[Path, Path]:
    """``(fixations.mat, stimuli folder)`` of an OSIE-layout folder."""
    root = Path(folder)
    if not root.is_dir():
        raise GazeDataError(f"{root}: not a folder (expected an OSIE folder with fixations.mat)")
    mats = [root / "fixations.mat", root / "eye" / "fixations.mat", root / "data/eye/fixations.mat"]
    stimuli = [root / "stimuli", root / "data" / "stimuli"]
    mat = next((m for m in mats if m.is_file()), None)
    if mat is None:
        looked = ", ".join(str(m.relative_to(root)) for m in mats)
        raise GazeDataError(f"{root}: no fixations.mat (looked for {looked})")
    stim = next((s for s in stimuli if s.is_dir()), stimuli[0])
    return mat, stim


def _as_list(value: object) -> list:
    if isinstance(value, np.ndarray):
        return list(value.reshape(-1))
    return [value]


def read_osie(folder: str | Path, *, size: tuple[int, int] | None = None) -> list[Fixations]:
    """Every image's fixations from an OSIE-layout folder, in file order.

    Image sizes come from the stimuli (header only) unless ``size=(height, width)`` is given.
    """
    from scipy.io import loadmat

    mat, stimuli = find_osie(folder)
    try:
        data = loadmat(mat, squeeze_me=True, struct_as_record=False)
    except Exception as error:  # noqa: BLE001 - scipy raises many types on a damaged file
        raise GazeDataError(f"{mat}: not a readable MATLAB file ({error})") from error
    if "fixations" not in data:
        raise GazeDataError(f"{mat}: no variable 'fixations' (OSIE layout expected)")
    out = []
    for index, entry in enumerate(_as_list(data["fixations"]), start=1):
        where = f"{mat}: fixations{{{index}}}"
        if not (hasattr(entry, "img") and hasattr(entry, "subjects")):
            raise GazeDataError(f"{where}: expected a struct with fields 'img' and 'subjects'")
        name = str(entry.img)
        observers = []
        for j, subject in enumerate(_as_list(entry.subjects), start=1):
            fields = ("fix_x", "fix_y", "fix_duration")
            if not all(hasattr(subject, f) for f in fields):
                raise GazeDataError(f"{where}.subjects{{{j}}}: expected fields {', '.join(fields)}")
            xs = np.atleast_1d(np.asarray(subject.fix_x, dtype=np.float64)) - 1.0
            ys = np.atleast_1d(np.asarray(subject.fix_y, dtype=np.float64)) - 1.0
            durations = np.atleast_1d(np.asarray(subject.fix_duration, dtype=np.float64))
            if not xs.size == ys.size == durations.size:
                raise GazeDataError(
                    f"{where}.subjects{{{j}}}: fix_x, fix_y, fix_duration differ in length"
                )
            observers.append((xs, ys, durations))
        if size is not None:
            height, width = size
        else:
            stimulus = stimuli / name
            if not stimulus.is_file():
                raise GazeDataError(
                    f"{stimulus}: stimulus of {where} not found (needed for the image size; "
                    f"or give the size explicitly)"
                )
            height, width = image_size(stimulus)
        out.append(Fixations.from_observers(observers, height, width, name=Path(name).stem))
    if not out:
        raise GazeDataError(f"{mat}: 'fixations' is empty")
    return out


def _number(path: Path, line: int, column: str, text: str) -> float:
    try:
        value = float(text)
    except (TypeError, ValueError):
        raise GazeDataError(
            f"{path}, line {line}: column {column!r} should be a number, got {text!r}"
        ) from None
    return value


def _stimulus_size(stimuli: Path, image: str) -> tuple[int, int] | None:
    direct = stimuli / image
    if direct.is_file():
        return image_size(direct)
    for suffix in _IMAGE_SUFFIXES:
        candidate = stimuli / f"{Path(image).stem}{suffix}"
        if candidate.is_file():
            return image_size(candidate)
    return None


def read_fixation_csv(
    path: str | Path,
    *,
    size: tuple[int, int] | None = None,
    stimuli: str | Path | None = None,
    one_based: bool = False,
) -> list[Fixations]:
    """Fixations from a CSV with columns ``image, observer, x, y[, duration][, width, height]``.

    Images appear in the order of their first row; observers are numbered per image in order of
    appearance. Each image's size comes from its ``width``/``height`` columns, else ``size``
    ``(height, width)``, else its file in the ``stimuli`` folder (same name, or same stem with an
    image suffix).
    """
    path = Path(path)
    if not path.is_file():
        raise GazeDataError(f"{path}: file not found (expected a fixation CSV)")
    required = ("image", "observer", "x", "y")
    try:
        with open(path, newline="", encoding="utf-8-sig") as handle:
            reader = csv.DictReader(handle)
            header = [h.strip().lower() for h in (reader.fieldnames or [])]
            missing = [c for c in required if c not in header]
            if missing:
                raise GazeDataError(
                    f"{path}: missing column(s) {', '.join(missing)}; expected a header with "
                    f"image, observer, x, y and optionally duration, width, height"
                )
            reader.fieldnames = header
            has_duration = "duration" in header
            has_size = "width" in header and "height" in header
            images: dict[str, dict] = {}
            for line, row in enumerate(reader, start=2):
                image = (row["image"] or "").strip()
                if not image:
                    raise GazeDataError(f"{path}, line {line}: empty 'image' value")
                record = images.setdefault(
                    image, {"x": [], "y": [], "d": [], "obs": [], "ids": {}, "size": None}
                )
                observer = (row["observer"] or "").strip()
                record["obs"].append(record["ids"].setdefault(observer, len(record["ids"])))
                shift = 1.0 if one_based else 0.0
                record["x"].append(_number(path, line, "x", row["x"]) - shift)
                record["y"].append(_number(path, line, "y", row["y"]) - shift)
                if has_duration:
                    record["d"].append(_number(path, line, "duration", row["duration"]))
                if has_size:
                    hw = (
                        _number(path, line, "height", row["height"]),
                        _number(path, line, "width", row["width"]),
                    )
                    if not all(math.isfinite(v) and v > 0 and v == int(v) for v in hw):
                        raise GazeDataError(
                            f"{path}, line {line}: width/height must be positive integers"
                        )
                    hw = (int(hw[0]), int(hw[1]))
                    if record["size"] not in (None, hw):
                        raise GazeDataError(f"{path}, line {line}: image {image!r} changes size")
                    record["size"] = hw
    except UnicodeDecodeError as error:
        raise GazeDataError(
            f"{path}: not UTF-8 text ({error.reason} at byte {error.start}); save the CSV as UTF-8"
        ) from None
    except csv.Error as error:  # a NUL byte, an unterminated quote at the end, ...
        raise GazeDataError(f"{path}: not a readable CSV file ({error})") from None
    if not images:
        raise GazeDataError(f"{path}: no fixation rows after the header")
    out = []
    for image, record in images.items():
        hw = record["size"] or size
        if hw is None and stimuli is not None:
            hw = _stimulus_size(Path(stimuli), image)
            if hw is None:
                raise GazeDataError(f"{Path(stimuli)}: no image file for {image!r} (from {path})")
        if hw is None:
            raise GazeDataError(
                f"{path}: image size unknown for {image!r}; add width/height columns, give the "
                f"size, or point to the stimuli folder"
            )
        out.append(
            Fixations(
                xs=np.asarray(record["x"]),
                ys=np.asarray(record["y"]),
                height=hw[0],
                width=hw[1],
                observers=np.asarray(record["obs"], dtype=np.int64),
                durations=np.asarray(record["d"]) if has_duration else None,
                name=Path(image).stem,
            )
        )
    return out
