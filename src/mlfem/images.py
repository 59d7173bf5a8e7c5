"""Finding and reading input images."""

from __future__ import annotations

from collections.abc import Collection, Iterable
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

__all__ = ["IMAGE_SUFFIXES", "ImageReadError", "find_images", "read_image", "to_rgb8"]

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".ppm"})


class ImageReadError(ValueError):
    """A file that should be an image could not be decoded."""


def find_images(paths: Iterable[str | Path]) -> list[Path]:
    """Expand files and directories (recursively, sorted) into image files.

    Files named explicitly are kept whatever their suffix (a bad one is reported when
    read); inside directories only known image suffixes are taken.

    Raises:
        FileNotFoundError: a path that does not exist.
    """
    return find_files(paths, IMAGE_SUFFIXES, keep_named_files=True)


def find_files(
    paths: Iterable[str | Path], suffixes: Collection[str], *, keep_named_files: bool
) -> list[Path]:
    """Files among ``paths`` and, recursively and sorted, inside its directories, whose
    lower-cased suffix is in ``suffixes``; with ``keep_named_files``, a file named
    explicitly is kept whatever its suffix. Shared by images and videos.

    Raises:
        FileNotFoundError: a path that does not exist.
    """
    found: list[Path] = []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            found.extend(
                sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in suffixes)
            )
        elif path.is_file():
            if keep_named_files or path.suffix.lower() in suffixes:
                found.append(path)
        else:
            raise FileNotFoundError(f"input not found: {path}")
    return found


def to_rgb8(image: Image.Image, source: str | Path = "image") -> Image.Image:
    """``image`` as an 8-bit RGB PIL image, high bit depths scaled rather than clipped.

    ``convert("RGB")`` clips integer modes to 0..255, so a 16-bit grey image (modes ``I;16*``,
    and ``I`` as Pillow reads 16-bit PNG, PGM and 32-bit TIFF files) came out almost white.
    Integer images are scaled as 16-bit data (``round(v * 255 / 65535)``); integer values
    outside 0..65535 and floating-point images (mode ``F``) have no known white level and are
    refused with :class:`ImageReadError` naming ``source``. Other modes convert as before.
    """
    mode = image.mode
    if mode == "I" or mode.startswith("I;16"):
        values = np.asarray(image).astype(np.int64)
        if values.size and (int(values.min()) < 0 or int(values.max()) > 65535):
            raise ImageReadError(
                f"{source}: integer pixel values {int(values.min())}..{int(values.max())} do not "
                f"fit 16 bit (0..65535); convert the image to 8 or 16 bit per sample"
            )
        grey = ((values * 255 + 32767) // 65535).astype(np.uint8)
        return Image.fromarray(grey).convert("RGB")
    if mode.startswith("F"):
        raise ImageReadError(
            f"{source}: floating-point pixels (mode {mode}) have no known white level; "
            f"convert the image to 8 or 16 bit per sample"
        )
    return image.convert("RGB")


def read_image(path: str | Path) -> Image.Image:
    """Decode ``path`` fully into an 8-bit RGB PIL image (:func:`to_rgb8`), or raise
    :class:`ImageReadError`."""
    try:
        with Image.open(path) as image:
            image.load()
            return to_rgb8(image, path)
    except ImageReadError:
        raise
    except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError) as error:
        raise ImageReadError(f"{path}: not a readable image ({error})") from error
