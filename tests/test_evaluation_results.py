"""results.csv: append, exact round trip, resume bookkeeping and repair of a killed write."""

from __future__ import annotations

import math

import numpy as np
import pytest

from mlfem.evaluation import ResultsWriter, read_results, result_columns


def _row(image: str, method: str, pcc: float, **extra) -> dict:
    return {"image_id": image, "method": method, "kind": "method", "pcc": pcc, "sim": 0.25,
            "pred_labels": [1, 3], "true_labels": [3], "correct": True, "n_classes_present": 1,
            "height": 48, "width": 64, **extra}


def test_rows_round_trip_bit_exactly(tmp_path) -> None:
    path = tmp_path / "results.csv"
    writer = ResultsWriter(path, ["pcc", "sim"])
    value = 0.1 + 0.2  # not representable in few digits
    assert writer.append([_row("a", "fem", value), _row("a", "gradcam", float("nan"))]) == 2
    assert path.read_text().splitlines()[0] == ",".join(result_columns(["pcc", "sim"]))
    table = read_results(path)
    assert table.metrics == ("pcc", "sim")
    assert table["pcc"][0] == value  # exact, not approximately
    assert math.isnan(table["pcc"][1])
    assert table["pred_labels"][0] == "1;3" and table["correct"][0] == 1.0
    assert table["height"].dtype == np.int64 and table["width"][0] == 64


def test_resume_knows_what_is_done_and_skips_duplicates(tmp_path) -> None:
    path = tmp_path / "results.csv"
    ResultsWriter(path, ["pcc", "sim"]).append([_row("a", "fem", 0.5), _row("b", "fem", 0.6)])
    again = ResultsWriter(path, ["pcc", "sim"])
    assert again.done == {("a", "fem"), ("b", "fem")}
    assert again.append([_row("a", "fem", 0.9), _row("c", "fem", 0.7)]) == 1
    table = read_results(path)
    assert table["image_id"].tolist() == ["a", "b", "c"]
    assert table["pcc"].tolist() == [0.5, 0.6, 0.7]  # the existing value was kept


def test_a_truncated_last_line_is_cut_off_on_resume(tmp_path) -> None:
    path = tmp_path / "results.csv"
    ResultsWriter(path, ["pcc", "sim"]).append([_row("a", "fem", 0.5)])
    complete = path.read_bytes()
    with open(path, "ab") as handle:  # what a kill in the middle of a write leaves
        handle.write(b"b,fem,method,0.12")
    assert read_results(path)["image_id"].tolist() == ["a"]  # readers ignore it too
    writer = ResultsWriter(path, ["pcc", "sim"])
    assert writer.repaired_bytes == len(b"b,fem,method,0.12")
    assert path.read_bytes() == complete
    assert writer.done == {("a", "fem")}


def test_a_file_with_other_columns_is_refused(tmp_path) -> None:
    path = tmp_path / "results.csv"
    ResultsWriter(path, ["pcc", "sim"])
    with pytest.raises(ValueError, match="other columns"):
        ResultsWriter(path, ["pcc", "nss"])


def test_pivot_aligns_images_and_methods(tmp_path) -> None:
    path = tmp_path / "results.csv"
    ResultsWriter(path, ["pcc", "sim"]).append(
        [_row("a", "fem", 0.5), _row("b", "gradcam", 0.2), _row("b", "fem", 0.6)]
    )
    images, methods, values = read_results(path).pivot("pcc", ["fem", "gradcam"])
    assert images == ["a", "b"] and methods == ["fem", "gradcam"]
    np.testing.assert_array_equal(values, [[0.5, np.nan], [0.6, 0.2]])
