"""The results table: one row per image and method, written to ``results.csv`` as it is
computed and read back for the analyses.

The file is append-only. Every batch's rows go out in one write followed by ``flush`` and
``fsync``, so a run killed at any moment leaves complete rows plus at most one truncated
last line; :class:`ResultsWriter` cuts that line off when the run is resumed, and tells the
runner which (image, method) pairs are already done.

Columns, in order (see ``docs/evaluation.md``): :data:`LEADING_COLUMNS`, one column per metric,
then :data:`TRAILING_COLUMNS`. Floats are written with ``repr`` (shortest round-trip form), so
a value read back is bit-identical to the one computed; undefined metrics are ``nan``. Label
lists are ``;``-separated class indices (names in the ``*_names`` columns), ``correct`` is
``1``, ``0`` or empty when the image has no labels or the classifier's classes do not match.
"""

from __future__ import annotations

import csv
import io
import math
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

__all__ = [
    "LEADING_COLUMNS",
    "TRAILING_COLUMNS",
    "ResultTable",
    "ResultsWriter",
    "as_table",
    "read_results",
    "result_columns",
]

LEADING_COLUMNS: tuple[str, ...] = ("image_id", "method", "kind")
TRAILING_COLUMNS: tuple[str, ...] = (
    "pred_labels",
    "true_labels",
    "pred_names",
    "true_names",
    "correct",
    "n_classes_present",
    "category",
    "split",
    "height",
    "width",
)
_FIXED = frozenset(LEADING_COLUMNS + TRAILING_COLUMNS)
_INT_COLUMNS = ("n_classes_present", "height", "width")
#: ``kind`` of a row: an explanation method, or a human/centre-bias reference point.
KINDS = ("method", "reference")


def result_columns(metrics: Sequence[str]) -> list[str]:
    """The header of a results file holding ``metrics``."""
    return [*LEADING_COLUMNS, *metrics, *TRAILING_COLUMNS]


def _row_problem(row: Sequence[str], header: Sequence[str], metrics: Sequence[str]) -> str | None:
    """What is wrong with one row of a results file (None when nothing)."""
    if len(row) != len(header):
        return f"{len(row)} fields where the header has {len(header)}"
    values = dict(zip(header, row))
    if not values.get("image_id") or not values.get("method"):
        return "no image_id or method"
    if values.get("kind", "method") not in KINDS:
        return f"kind {values['kind'][:40]!r} is neither 'method' nor 'reference'"
    for name in (*metrics, "correct", *_INT_COLUMNS):
        value = values.get(name)
        if value:
            try:
                float(value)
            except ValueError:
                return f"{name} is {value[:40]!r}, not a number"
    return None


def _checked_rows(
    path: Path, text: str, metrics: Sequence[str]
) -> tuple[list[str], list[list[str]]]:
    """The header and rows of a results file's ``text``.

    Raises:
        ValueError: naming the file and the line of the first damaged row, and what to do.
    """
    reader = csv.reader(io.StringIO(text))
    rows: list[list[str]] = []
    try:
        header = next(reader, None)
        if header is None:
            raise ValueError(f"{path} is empty: no header")
        for row in reader:
            problem = _row_problem(row, header, metrics)
            if problem is not None:
                raise ValueError(_damaged(path, reader.line_num, problem))
            rows.append(row)
    except csv.Error as error:
        raise ValueError(_damaged(path, reader.line_num, str(error))) from None
    return header, rows


def _damaged(path: Path, line: int, problem: str) -> str:
    return (
        f"{path}, line {line}: damaged row ({problem}). Delete that line and rerun mlfem "
        "evaluate on the folder to recompute its image, or start again with --overwrite"
    )


def _format(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, float | np.floating):
        return repr(float(value))  # shortest string that reads back to the same float
    if isinstance(value, list | tuple):
        return ";".join(str(v) for v in value)
    return str(value)


class ResultsWriter:
    """Appends rows to ``results.csv``, creating it or resuming an earlier run's file.

    Args:
        path: the CSV file.
        metrics: metric column names, in order. An existing file must have exactly the
            header this implies; anything else is an error (a different run's file).
    """

    def __init__(self, path: str | Path, metrics: Sequence[str]) -> None:
        self.path = Path(path)
        self.metrics = tuple(metrics)
        self.columns = result_columns(self.metrics)
        self.done: set[tuple[str, str]] = set()
        self.repaired_bytes = 0
        self._open()

    def _open(self) -> None:
        header = ",".join(self.columns) + "\n"
        if not self.path.exists() or self.path.stat().st_size == 0:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._write_synced(header, mode="w")
            return
        data = self.path.read_bytes()
        if not data.endswith(b"\n"):
            # A run killed mid-write leaves a partial last line: drop it (its batch is redone).
            keep = data.rfind(b"\n") + 1
            self.repaired_bytes = len(data) - keep
            with open(self.path, "r+b") as handle:
                handle.truncate(keep)
                handle.flush()
                os.fsync(handle.fileno())
            data = data[:keep]
        if not data:
            self._write_synced(header, mode="w")
            return
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as error:
            raise ValueError(
                f"{self.path} is not UTF-8 text ({error}): it is damaged. Use another output "
                "folder or --overwrite"
            ) from None
        first = text.split("\n", 1)[0]
        if first.split(",") != self.columns:
            raise ValueError(
                f"{self.path} was written with other columns ({first}); expected "
                f"{','.join(self.columns)}. Use another output folder or --overwrite."
            )
        _, rows = _checked_rows(self.path, text, self.metrics)
        for row in rows:
            self.done.add((row[0], row[1]))  # image_id, method: the leading columns

    def _write_synced(self, text: str, mode: str = "a") -> None:
        with open(self.path, mode, encoding="utf-8", newline="") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())

    def append(self, rows: Iterable[Mapping[str, Any]]) -> int:
        """Write ``rows`` (dicts keyed by column; missing keys are empty) in one synced write.

        Rows whose (image_id, method) is already in the file are skipped. Returns how many
        were written.
        """
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        written = 0
        for row in rows:
            key = (str(row["image_id"]), str(row["method"]))
            if key in self.done:
                continue
            writer.writerow([_format(row.get(column)) for column in self.columns])
            self.done.add(key)
            written += 1
        if written:
            self._write_synced(buffer.getvalue())
        return written


@dataclass
class ResultTable:
    """Columns of a results table as NumPy arrays: strings (object), metrics (float64),
    ``correct`` (float64: 1, 0 or NaN), ``n_classes_present``/``height``/``width`` (int64,
    -1 when unknown)."""

    columns: dict[str, np.ndarray]
    metrics: tuple[str, ...]
    _order: list[str] = field(default_factory=list, repr=False)

    def __len__(self) -> int:
        return int(self.columns["image_id"].size)

    def __getitem__(self, name: str) -> np.ndarray:
        return self.columns[name]

    @property
    def methods(self) -> list[str]:
        """Every method and reference, in order of first appearance."""
        return list(dict.fromkeys(self.columns["method"].tolist()))

    @property
    def explanation_methods(self) -> list[str]:
        """Methods whose rows have ``kind == "method"``, in order of first appearance."""
        mask = self.columns["kind"] != "reference"
        return list(dict.fromkeys(self.columns["method"][mask].tolist()))

    @property
    def reference_methods(self) -> list[str]:
        """Reference rows (human ceiling, centre bias), in order of first appearance."""
        mask = self.columns["kind"] == "reference"
        return list(dict.fromkeys(self.columns["method"][mask].tolist()))

    @property
    def image_ids(self) -> list[str]:
        """Distinct image ids, in order of first appearance."""
        return list(dict.fromkeys(self.columns["image_id"].tolist()))

    def where(self, mask: np.ndarray) -> ResultTable:
        """The rows where ``mask`` is true."""
        mask = np.asarray(mask, dtype=bool)
        return ResultTable({k: v[mask] for k, v in self.columns.items()}, self.metrics)

    def method_rows(self, method: str) -> ResultTable:
        return self.where(self.columns["method"] == method)

    def pivot(
        self, column: str, methods: Sequence[str] | None = None
    ) -> tuple[list[str], list[str], np.ndarray]:
        """``(image_ids, methods, values)`` with ``values[i, m]`` the ``column`` of image ``i``
        under method ``m`` (NaN where that row is missing). Images are in first-appearance
        order; a duplicated (image, method) row keeps its last value."""
        methods = list(methods) if methods is not None else self.methods
        images = self.image_ids
        row_of = {image: i for i, image in enumerate(images)}
        col_of = {method: j for j, method in enumerate(methods)}
        values = np.full((len(images), len(methods)), np.nan)
        source = self.columns[column].astype(np.float64)
        for image, method, value in zip(self.columns["image_id"], self.columns["method"], source):
            j = col_of.get(method)
            if j is not None:
                values[row_of[image], j] = value
        return images, methods, values

    def rows(self) -> list[dict[str, Any]]:
        """The table as a list of dicts (native Python values)."""
        names = list(self.columns)
        return [
            {name: _native(self.columns[name][i]) for name in names} for i in range(len(self))
        ]


def _native(value: Any) -> Any:
    return value.item() if isinstance(value, np.generic) else value


def _to_float(value: Any) -> float:
    if value is None or value == "":
        return math.nan
    if isinstance(value, bool):
        return float(value)
    return float(value)


def _to_int(value: Any) -> int:
    if value is None or value == "":
        return -1
    return int(float(value))


def _looks_numeric(values: Sequence[Any]) -> bool:
    for value in values:
        if value is None or value == "":
            continue
        try:
            float(value)
        except (TypeError, ValueError):
            return False
    return True


def as_table(
    data: ResultTable | Mapping[str, Sequence[Any]] | Sequence[Mapping[str, Any]],
    metrics: Sequence[str] | None = None,
) -> ResultTable:
    """Coerce a dict of columns or a list of row dicts into a :class:`ResultTable`.

    ``image_id`` and ``method`` are required; ``kind`` defaults to ``"method"``. Metric
    columns are ``metrics`` when given, else every other column with numeric values.
    """
    if isinstance(data, ResultTable):
        return data
    if isinstance(data, Mapping):
        raw = {str(k): list(v) for k, v in data.items()}
    else:
        rows = list(data)
        names = list(dict.fromkeys(k for row in rows for k in row))
        raw = {name: [row.get(name) for row in rows] for name in names}
    for required in ("image_id", "method"):
        if required not in raw:
            raise ValueError(f"a results table needs an {required!r} column")
    n = len(raw["image_id"])
    if any(len(v) != n for v in raw.values()):
        raise ValueError("every column of a results table must have the same length")
    if metrics is None:
        metrics = [k for k, v in raw.items() if k not in _FIXED and _looks_numeric(v)]
    columns: dict[str, np.ndarray] = {}
    for name, values in raw.items():
        if name in metrics or name == "correct":
            columns[name] = np.array([_to_float(v) for v in values], dtype=np.float64)
        elif name in _INT_COLUMNS:
            columns[name] = np.array([_to_int(v) for v in values], dtype=np.int64)
        else:
            columns[name] = np.array(["" if v is None else str(v) for v in values], dtype=object)
    columns.setdefault("kind", np.array(["method"] * n, dtype=object))
    columns.setdefault("correct", np.full(n, np.nan))
    columns.setdefault("n_classes_present", np.full(n, -1, dtype=np.int64))
    for name in metrics:
        if name not in columns:
            raise ValueError(f"metric column {name!r} is missing")
    return ResultTable(columns, tuple(metrics))


def read_results(path: str | Path) -> ResultTable:
    """Read a ``results.csv`` (a truncated last line, from a killed run, is ignored).

    Raises:
        ValueError: not a results file, or a damaged row (the message names its line).
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as error:
        raise ValueError(
            f"{path} is not UTF-8 text ({error}): not an mlfem results file, or damaged"
        ) from None
    if text and not text.endswith("\n"):
        text = text[: text.rfind("\n") + 1]
    header = next(csv.reader(io.StringIO(text)), None)
    if header is None:
        raise ValueError(f"{path} is empty: no header")
    missing = [c for c in (*LEADING_COLUMNS, *TRAILING_COLUMNS) if c not in header]
    if missing:
        raise ValueError(f"{path} is not an mlfem results file: missing columns {missing}")
    metrics = [c for c in header if c not in _FIXED]
    _, rows = _checked_rows(path, text, metrics)
    columns = {name: [row[i] if i < len(row) else "" for row in rows] for i, name in enumerate(header)}
    return as_table(columns, metrics)
