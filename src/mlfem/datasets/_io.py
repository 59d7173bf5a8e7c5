"""Shared readers: images (PIL), grey-level maps, MATLAB files (scipy, imported lazily), text.

Every reader opens and closes its file within the call, so datasets hold paths only and stay
picklable for DataLoader worker processes.  Failures are raised as ``ValueError`` with the
reason; the dataset turns them into ``SampleError``/``SkippedItem`` with the image id.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

from mlfem.images import ImageReadError, to_rgb8

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".gif", ".webp")


def list_images(folder: Path) -> list[Path]:
    """Image files directly in ``folder``, sorted by name (hidden files ignored)."""
    return sorted(
        p
        for p in folder.iterdir()
        if p.is_file() and not p.name.startswith(".") and p.suffix.lower() in IMAGE_EXTENSIONS
    )


def image_size(path: Path) -> tuple[int, int]:
    """``(H, W)`` from the image header, without decoding the pixels."""
    try:
        with Image.open(path) as im:
            width, height = im.size
    except (OSError, UnidentifiedImageError, ValueError) as error:
        raise ValueError(f"unreadable image: {error}") from error
    if width <= 0 or height <= 0:
        raise ValueError(f"image has size {width}x{height}")
    return height, width


def check_image(path: Path) -> tuple[int, int]:
    """``(H, W)`` from the header, plus a cheap end-of-file check for JPEG and PNG.

    Truncated downloads are the common corruption: a JPEG without its end-of-image marker or
    a PNG without its ``IEND`` chunk is rejected here without decoding any pixels.
    """
    size = image_size(path)
    with open(path, "rb") as handle:
        head = handle.read(8)
        handle.seek(0, 2)
        length = handle.tell()
        handle.seek(max(0, length - 1024))
        tail = handle.read()
    if head[:3] == b"\xff\xd8\xff" and b"\xff\xd9" not in tail:
        raise ValueError("truncated JPEG (no end-of-image marker)")
    if head == b"\x89PNG\r\n\x1a\n" and b"IEND" not in tail:
        raise ValueError("truncated PNG (no IEND chunk)")
    return size


def read_image(path: Path) -> torch.Tensor:
    """Decode an image to a ``uint8`` ``(3, H, W)`` RGB tensor (grey and RGBA converted,
    16-bit images scaled and floating-point ones refused: :func:`mlfem.images.to_rgb8`)."""
    try:
        with Image.open(path) as im:
            im.load()  # force full decoding here, so truncation is caught now
            rgb = np.asarray(to_rgb8(im, path.name), dtype=np.uint8)
    except ImageReadError as error:
        raise ValueError(str(error)) from error
    except (OSError, UnidentifiedImageError, ValueError, SyntaxError) as error:
        raise ValueError(f"corrupt or unreadable image: {error}") from error
    return torch.from_numpy(np.ascontiguousarray(rgb.transpose(2, 0, 1)))


def read_gray(path: Path) -> np.ndarray:
    """Decode a grey-level map (``L``; colour maps are converted to luminance) as float64."""
    try:
        with Image.open(path) as im:
            im.load()
            if im.mode in ("I", "I;16", "F"):
                arr = np.asarray(im, dtype=np.float64)
            else:
                arr = np.asarray(im.convert("L"), dtype=np.float64)
    except (OSError, UnidentifiedImageError, ValueError, SyntaxError) as error:
        raise ValueError(f"corrupt or unreadable map image: {error}") from error
    return arr


def loadmat(path: Path) -> dict[str, Any]:
    """Read a MATLAB ``.mat`` file (v4-v7.2) with scipy, as ``scipy.io.loadmat`` returns it.

    MATLAB v7.3 files are HDF5 and need h5py, which mlfem does not depend on: they are
    reported as unreadable with that reason.
    """
    import scipy.io  # lazily: scipy is slow to import and only needed for .mat datasets

    try:
        return scipy.io.loadmat(str(path))
    except NotImplementedError as error:  # scipy's message for v7.3 (HDF5) files
        raise ValueError(f"MATLAB v7.3 (HDF5) files are not supported: {error}") from error
    except Exception as error:  # scipy raises many types on corrupt input
        raise ValueError(f"malformed .mat file: {error}") from error


def unwrap(value: Any) -> Any:
    """Strip the 1x1 object/cell wrappers ``loadmat`` puts around MATLAB values."""
    while isinstance(value, np.ndarray) and value.dtype == object and value.size == 1:
        value = value.reshape(-1)[0]
    return value


def cell_items(value: Any) -> list[Any]:
    """The elements of a MATLAB cell array (or struct array), in MATLAB's linear order.

    MATLAB stores arrays column-major, so ``order="F"`` keeps ``c{1}, c{2}, ...`` in order for
    2-D cells too.  Struct-array elements come back as 1x1 struct arrays, like cell elements.
    """
    if isinstance(value, np.ndarray) and value.dtype == object:
        # A 1x1 cell that wraps another cell: descend until we reach the real list.
        while value.size == 1 and isinstance(value.reshape(-1)[0], np.ndarray) and (
            value.reshape(-1)[0].dtype == object
        ):
            value = value.reshape(-1)[0]
        return list(value.reshape(-1, order="F"))
    if isinstance(value, np.ndarray) and value.dtype.names is not None:
        flat = value.reshape(-1, order="F")
        return [flat[k : k + 1] for k in range(flat.size)]
    return [value]


def struct_field(struct: Any, name: str) -> Any:
    """Field ``name`` of a MATLAB struct element as ``loadmat`` returns it, unwrapped."""
    struct = unwrap(struct)
    if isinstance(struct, np.ndarray) and struct.dtype.names and struct.size == 1:
        struct = struct.reshape(-1)[0]
    if not (isinstance(struct, np.void) and struct.dtype.names):
        raise ValueError(f"expected a struct with field {name!r}, got {type(struct).__name__}")
    if name not in struct.dtype.names:
        raise ValueError(f"struct has no field {name!r} (fields: {', '.join(struct.dtype.names)})")
    return unwrap(struct[name])


def mat_string(value: Any) -> str:
    """A MATLAB char array as a Python string."""
    value = unwrap(value)
    if isinstance(value, np.ndarray):
        if value.dtype.kind in "US":
            return "".join(str(v) for v in value.reshape(-1))
        if value.dtype.kind in "iuf" and value.size:  # chars saved as numbers
            return "".join(chr(int(v)) for v in value.reshape(-1))
    if isinstance(value, (str, bytes)):
        return value.decode() if isinstance(value, bytes) else value
    raise ValueError(f"expected a string, got {value!r:.60}")


def mat_vector(value: Any) -> np.ndarray:
    """A MATLAB numeric vector (row, column or empty) as a flat float64 array."""
    value = unwrap(value)
    arr = np.asarray(value)
    if arr.dtype == object or arr.dtype.kind not in "iufb":
        raise ValueError(f"expected numbers, got an array of {arr.dtype}")
    return arr.astype(np.float64).reshape(-1)


def as_points(xs: np.ndarray, ys: np.ndarray, what: str) -> np.ndarray:
    """Stack x and y vectors into ``(N, 2)``, checking lengths and finiteness."""
    if xs.shape != ys.shape:
        raise ValueError(f"{what}: {xs.size} x values but {ys.size} y values")
    points = np.stack([xs, ys], axis=1) if xs.size else np.zeros((0, 2))
    if not np.all(np.isfinite(points)):
        raise ValueError(f"{what}: non-finite coordinates")
    return points


def read_numeric_table(path: Path, min_columns: int) -> np.ndarray:
    """Whitespace- or comma-separated numbers, one row per line; ``(rows, columns)`` float64.

    Blank lines and ``#`` comments are ignored; a first line that is not numeric is taken as a
    header.  Rows of unequal length or non-numeric values make the file malformed.
    """
    try:
        text = path.read_text(encoding="utf-8", errors="strict")
    except (OSError, UnicodeDecodeError) as error:
        raise ValueError(f"unreadable text file: {error}") from error
    rows: list[list[float]] = []
    first = True
    for number, line in enumerate(text.splitlines(), start=1):
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        fields = line.replace(",", " ").replace(";", " ").split()
        try:
            rows.append([float(f) for f in fields])
        except ValueError:
            if first:
                first = False
                continue  # the first non-blank line may be a header
            raise ValueError(f"line {number}: non-numeric value in {line!r:.60}") from None
        first = False
    if not rows:
        return np.zeros((0, min_columns))
    widths = {len(r) for r in rows}
    if len(widths) != 1:
        raise ValueError(f"rows have different numbers of columns: {sorted(widths)}")
    table = np.asarray(rows, dtype=np.float64)
    if table.shape[1] < min_columns:
        raise ValueError(f"expected at least {min_columns} columns, found {table.shape[1]}")
    if not np.all(np.isfinite(table[:, :min_columns])):
        raise ValueError("non-finite coordinates")
    return table
