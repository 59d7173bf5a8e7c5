"""MexCulture142 (Obeso et al. 2022): 284 images of Mexican monuments, 3 styles, 23 observers.

File names share a stem ``<Style>_<Name>_<Place>`` and an index ``N_<#>``:

- ``Images/<Style>_<Name>_<Place>_N_<#>.png``
- ``Fixations/<stem>_GazeFix_N_<#>.txt``: all observers' fixations, whitespace-separated, x and
  y in the first two columns (further columns ignored);
- ``Density Maps/<stem>_GFDM_N_<#>.png``: the authors' GFDMs (the ones the paper used);
- ``Scanpaths/<stem>_ScanPath_N_<#>_P_<p>.txt``: one file per participant ``p``: x, y in pixels
  and the fixation duration in seconds (converted to ms).

With ``fixations="auto"`` (default) per-observer fixations come from ``Scanpaths/`` when that
folder exists, otherwise from ``Fixations/`` as one pooled pseudo-observer.  Coordinates are
taken as 0-based pixels; pass ``one_based=True`` if your copy is 1-based.  The class is the
style prefix.  There is no published sigma for this dataset's geometry, so the default GFDM is
the shipped one; building GFDMs from fixations requires ``sigma=``.
"""

from __future__ import annotations

import re
from pathlib import Path

from . import _io
from ._base import GazeDataset
from .registry import register_dataset
from .schema import Gaze, Record

__all__ = ["STYLES", "MexCulture"]

STYLES = ("Prehispanic", "Colonial", "Modern")

LAYOUT = """\
<root>/Images/<Style>_<Name>_<Place>_N_<#>.png
<root>/Fixations/<Style>_<Name>_<Place>_GazeFix_N_<#>.txt      (x y ... per line)
<root>/Density Maps/<Style>_<Name>_<Place>_GFDM_N_<#>.png
<root>/Scanpaths/<Style>_<Name>_<Place>_ScanPath_N_<#>_P_<p>.txt   (x y duration[s])
Styles: Prehispanic, Colonial, Modern
"""

_IMAGE = re.compile(r"^(?P<stem>(?P<style>[^_]+)_.+)_N_(?P<num>\d+)$")
_SCANPATH = re.compile(r"_ScanPath_N_(?P<num>\d+)_P_(?P<p>\d+)$")


def _style_key(style: str) -> str:
    # "PreHispanic", "Pre-hispanic" and "prehispanic" name the same style.
    return re.sub(r"[^a-z]", "", style.lower())


@register_dataset
class MexCulture(GazeDataset):
    """MexCulture142 images, fixations, scanpaths and GFDMs; the class is the style."""

    name = "mexculture"
    aliases = ("mexculture142",)
    layout = LAYOUT
    default_sigma = None
    default_gfdm = "shipped"

    def __init__(
        self,
        root: str | Path,
        *,
        fixations: str = "auto",
        one_based: bool = False,
        **options: object,
    ) -> None:
        if fixations not in ("auto", "scanpaths", "gazefix"):
            raise ValueError("fixations must be 'auto', 'scanpaths' or 'gazefix'")
        self.fixation_source = fixations
        self.one_based = bool(one_based)
        super().__init__(root, **options)  # type: ignore[arg-type]

    def _index(self) -> list[Record]:
        images = self._require(self.root / "Images")
        maps = self.root / "Density Maps"
        self.maps_location = maps
        self.has_shipped_maps = maps.is_dir()
        source = self.fixation_source
        if source == "auto":
            source = "scanpaths" if (self.root / "Scanpaths").is_dir() else "gazefix"
        folder = self._require(self.root / ("Scanpaths" if source == "scanpaths" else "Fixations"))
        self.info["fixations_from"] = source
        self.has_durations = source == "scanpaths"

        scanpaths: dict[tuple[str, str], list[tuple[int, Path]]] = {}
        if source == "scanpaths":
            for path in folder.glob("*.txt"):
                match = _SCANPATH.search(path.stem)
                if match:
                    key = (path.stem[: match.start()], match["num"])
                    scanpaths.setdefault(key, []).append((int(match["p"]), path))

        canonical = {_style_key(s): s for s in STYLES}
        self.class_names = list(STYLES)
        records = []
        for image in _io.list_images(images):
            match = _IMAGE.match(image.stem)
            if not match:
                self._skip(image.stem, image, "file name is not <Style>_<Name>_<Place>_N_<#>")
                continue
            style = canonical.get(_style_key(match["style"]))
            if style is None:
                style = match["style"]
                canonical[_style_key(style)] = style
                self.class_names.append(style)
            stem, num = match["stem"], match["num"]
            if source == "scanpaths":
                files = tuple(p for _, p in sorted(scanpaths.get((stem, num), [])))
                if not files:
                    self._skip(image.stem, folder, "no scanpath files for this image")
                    continue
            else:
                files = (folder / f"{stem}_GazeFix_N_{num}.txt",)
            record = Record(
                image_id=image.stem,
                image_path=image,
                labels=(self.class_names.index(style),),
                category=style,
                gaze_paths=files,
                map_path=maps / f"{stem}_GFDM_N_{num}.png",
            )
            # Text files are tiny: parse them now so malformed ones are skipped at open time
            # and fixations outside the image are counted for the whole dataset.
            try:
                record.gaze = self._parse_gaze(record)
            except FileNotFoundError as error:
                self._skip(image.stem, error.filename or files[0], "fixation file missing")
                continue
            except ValueError as error:
                self._skip(image.stem, files[0], f"malformed fixations: {error}")
                continue
            records.append(record)
        return records

    def _parse_gaze(self, record: Record, size: tuple[int, int] | None = None) -> Gaze:
        offset = 1.0 if self.one_based else 0.0
        observers, durations = [], []
        scanpath = self.info.get("fixations_from") == "scanpaths"
        for path in record.gaze_paths:
            if not path.is_file():
                raise FileNotFoundError(2, "missing", str(path))
            try:
                table = _io.read_numeric_table(path, min_columns=3 if scanpath else 2)
            except ValueError as error:
                raise ValueError(f"{path.name}: {error}") from None
            observers.append(table[:, :2] - offset)
            if scanpath:
                durations.append(table[:, 2] * 1000.0)  # seconds -> ms
        return Gaze(observers=observers, durations=durations if scanpath else None)
