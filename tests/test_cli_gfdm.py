"""``mlfem gfdm`` end to end (generated CSV, real OSIE sample) and its error messages."""

from __future__ import annotations

import csv
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from _osie import require_osie
from PIL import Image
from scipy.io import savemat

from mlfem.cli import main
from mlfem.gaze import gfdm, gfdm_batch, read_osie, sigma_from_geometry


def write_csv(path: Path, rows: list[dict], header: list[str]) -> Path:
    with open(path, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=header)
        writer.writeheader()
        writer.writerows(rows)
    return path


@pytest.fixture
def fixation_csv(tmp_path: Path) -> Path:
    rng = np.random.default_rng(0)
    rows = []
    for image in ("a.jpg", "b.jpg"):
        for observer in ("s1", "s2", "s3"):
            for _ in range(5):
                rows.append(
                    {
                        "image": image,
                        "observer": observer,
                        "x": round(rng.uniform(0, 39), 2),
                        "y": round(rng.uniform(0, 29), 2),
                        "duration": int(rng.integers(100, 400)),
                    }
                )
    # two observers on exactly the same spot of image a: --collapse counts it once
    rows.append({"image": "a.jpg", "observer": "s1", "x": 10.0, "y": 10.0, "duration": 150})
    rows.append({"image": "a.jpg", "observer": "s2", "x": 10.0, "y": 10.0, "duration": 150})
    rows.append({"image": "b.jpg", "observer": "s1", "x": 55.0, "y": 3.0, "duration": 200})
    rows.append({"image": "b.jpg", "observer": "s2", "x": 3.0, "y": -4.0, "duration": 200})
    return write_csv(tmp_path / "fix.csv", rows, ["image", "observer", "x", "y", "duration"])


def run_cli(args: list[str], capsys) -> tuple[int, str, str]:
    code = main(["gfdm", *[str(a) for a in args]])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_csv_end_to_end(tmp_path, fixation_csv, capsys):
    out = tmp_path / "maps"
    code, stdout, stderr = run_cli(
        [fixation_csv, "-o", out, "--sigma", 3, "--size", "40x30"], capsys
    )
    assert code == 0, stderr
    assert "wrote 2 GFDMs" in stdout
    assert "dropped 2 out-of-bounds fixation(s) in 1 image(s): b: 2" in stderr
    assert sorted(p.name for p in out.iterdir()) == [
        "a.npy",
        "a.png",
        "b.npy",
        "b.png",
        "summary.csv",
    ]
    maps = {name: np.load(out / f"{name}.npy") for name in ("a", "b")}
    for array in maps.values():
        assert array.shape == (30, 40) and array.dtype == np.float32
        assert abs(float(array.sum(dtype=np.float64)) - 1) < 1e-5
    # same as the library call on the same fixations
    with open(fixation_csv) as handle:
        rows = [r for r in csv.DictReader(handle) if r["image"] == "a.jpg"]
    expected = gfdm([float(r["x"]) for r in rows], [float(r["y"]) for r in rows], 30, 40, 3.0)
    assert np.allclose(maps["a"], expected.numpy(), atol=1e-9)
    preview = np.asarray(Image.open(out / "a.png"))
    assert preview.shape == (30, 40) and preview.dtype == np.uint8 and preview.max() == 255
    summary = list(csv.DictReader(open(out / "summary.csv")))
    assert [
        (r["image"], r["fixations_kept"], r["fixations_dropped"], r["observers"]) for r in summary
    ] == [("a", "17", "0", "3"), ("b", "15", "2", "3")]


def scipy_gfdm(rows: list[dict], height: int, width: int, sigma: float, *, weighted: bool = False,
               collapse: bool = False, mode: str = "reflect", shift: float = 0.0) -> np.ndarray:
    """The GFDM from its definition, with scipy: each fixation counted on pixel
    floor(coordinate + 0.5) (its duration instead of 1 when ``weighted``; 1 per fixated pixel when
    ``collapse``), blurred by scipy's Gaussian filter (truncated at 4 sigma), normalised to sum 1."""
    from scipy.ndimage import gaussian_filter

    counts = np.zeros((height, width))
    for r in rows:
        col = int(np.floor(float(r["x"]) - shift + 0.5))
        row = int(np.floor(float(r["y"]) - shift + 0.5))
        if 0 <= row < height and 0 <= col < width:
            counts[row, col] += float(r["duration"]) if weighted else 1.0
    if collapse:
        counts = (counts > 0).astype(float)
    blurred = gaussian_filter(counts, sigma, mode=mode, truncate=4.0)
    return blurred / blurred.sum()


def rows_of(path: Path, image: str) -> list[dict]:
    with open(path) as handle:
        return [r for r in csv.DictReader(handle) if r["image"] == image]


@pytest.mark.parametrize(
    ("flags", "reference"),
    [
        ([], {}),
        (["--duration-weighting"], {"weighted": True}),
        (["--collapse"], {"collapse": True}),
        (["--padding", "zero"], {"mode": "constant"}),
        (["--one-based"], {"shift": 1.0}),
    ],
)
def test_csv_options_give_the_gfdm_of_their_definition(tmp_path, fixation_csv, capsys, flags, reference):
    out = tmp_path / "maps"
    code, _, err = run_cli(
        [fixation_csv, "--size", "40x30", "--no-png", "-o", out, "--sigma", 3, "--dtype", "float64", *flags],
        capsys,
    )
    assert code == 0, err
    rows = rows_of(fixation_csv, "a.jpg")
    ours = np.load(out / "a.npy")
    assert ours.dtype == np.float64 and not (out / "a.png").exists()
    np.testing.assert_allclose(ours, scipy_gfdm(rows, 30, 40, 3.0, **reference), rtol=1e-9, atol=1e-15)
    # Each option changes the map by more than rounding: it was applied, not ignored.
    if flags:
        plain = scipy_gfdm(rows, 30, 40, 3.0)
        assert np.abs(ours - plain).max() > 1e-6 * plain.max(), flags


def test_csv_viewing_geometry_sets_sigma(tmp_path, fixation_csv, capsys):
    # 1280 px over 400 mm at 600 mm: one degree is 2 * 600 * tan(0.5 deg) mm = 10.4724 mm, i.e.
    # 33.51 px; --sigma-deg 0.5 halves it.
    base = [fixation_csv, "--size", "40x30", "--no-png", "--dtype", "float64",
            "--screen-width-px", 1280, "--screen-width-mm", 400, "--distance-mm", 600]
    for degrees in (1.0, 0.5):
        out = tmp_path / f"geo{degrees}"
        code, stdout, _ = run_cli([*base, "-o", out, "--sigma-deg", degrees], capsys)
        assert code == 0
        sigma = degrees * 2 * 600 * np.tan(np.radians(0.5)) * 1280 / 400
        assert f"sigma {sigma:.2f} px" in stdout
        summary = list(csv.DictReader(open(out / "summary.csv")))
        assert float(summary[0]["sigma_px"]) == pytest.approx(sigma, rel=1e-5)
        expected = scipy_gfdm(rows_of(fixation_csv, "a.jpg"), 30, 40, sigma)
        np.testing.assert_allclose(np.load(out / "a.npy"), expected, rtol=1e-9, atol=1e-15)


def test_csv_with_size_columns_and_one_based(tmp_path, capsys):
    rows = [
        {"image": "im", "observer": 1, "x": 5, "y": 4, "width": 10, "height": 8},
        {"image": "im", "observer": 2, "x": 6, "y": 4, "width": 10, "height": 8},
    ]
    path = write_csv(tmp_path / "s.csv", rows, ["image", "observer", "x", "y", "width", "height"])
    code, _, err = run_cli([path, "-o", tmp_path / "o", "--sigma", 0.5, "--one-based"], capsys)
    assert code == 0, err
    array = np.load(tmp_path / "o" / "im.npy")
    assert array.shape == (8, 10)
    assert np.unravel_index(array.argmax(), array.shape) in {
        (3, 4),
        (3, 5),
    }  # 1-based (5,4) -> (4,3)


def test_csv_sizes_from_stimuli_folder(tmp_path, fixation_csv, capsys):
    stimuli = tmp_path / "stimuli"
    stimuli.mkdir()
    for name in ("a.jpg", "b.jpg"):
        Image.new("RGB", (40, 30)).save(stimuli / name)
    code, _, err = run_cli(
        [fixation_csv, "-o", tmp_path / "o", "--sigma", 2, "--stimuli", stimuli], capsys
    )
    assert code == 0, err
    assert np.load(tmp_path / "o" / "b.npy").shape == (30, 40)


def test_osie_end_to_end(tmp_path, capsys):
    source = require_osie()
    out = tmp_path / "osie"
    code, stdout, err = run_cli([source, "-o", out, "--sigma", 24, "--no-png"], capsys)
    assert code == 0, err
    assert "wrote 40 GFDMs" in stdout and "dropped 0 out-of-bounds fixations" in stdout
    files = sorted(out.glob("*.npy"))
    assert len(files) == 40 and files[0].name == "1001.npy"
    first = np.load(files[0])
    assert first.shape == (600, 800) and abs(float(first.sum(dtype=np.float64)) - 1) < 1e-5
    expected = gfdm_batch(read_osie(source)[:1], 24.0).maps[0]
    assert np.allclose(first, expected.numpy(), atol=1e-9)


def test_osie_layout_copy_with_png(tmp_path, capsys):
    """A two-image OSIE-layout folder (written here) also exercises the .png previews."""
    source = require_osie()
    folder = tmp_path / "mini"
    (folder / "stimuli").mkdir(parents=True)
    for name in ("1001.jpg", "1002.jpg"):
        shutil.copy(source / "stimuli" / name, folder / "stimuli" / name)
    records = np.empty((2, 1), dtype=object)
    for i, fix in enumerate(read_osie(source)[:2]):
        subjects = np.empty((fix.n_observers, 1), dtype=object)
        for j, o in enumerate(fix.observer_ids):
            own = fix.of_observer(o)
            subjects[j, 0] = {
                "fix_x": own.xs + 1,
                "fix_y": own.ys + 1,
                "fix_duration": own.durations,
            }
        records[i, 0] = {"img": f"{fix.name}.jpg", "subjects": subjects}
    savemat(folder / "fixations.mat", {"fixations": records})
    code, _, err = run_cli([folder, "-o", tmp_path / "o", "--sigma", 24, "--collapse"], capsys)
    assert code == 0, err
    assert sorted(p.name for p in (tmp_path / "o").iterdir()) == [
        "1001.npy",
        "1001.png",
        "1002.npy",
        "1002.png",
        "summary.csv",
    ]


@pytest.mark.parametrize(
    "extra, message",
    [
        ([], "no blur width: give --sigma"),
        (["--sigma", "3", "--distance-mm", "600"], "either --sigma or the viewing geometry"),
        (["--distance-mm", "600"], "incomplete viewing geometry"),
        (["--sigma", "-1"], "--sigma must be positive"),
        (["--sigma", "3", "--collapse", "--duration-weighting"], "mutually exclusive"),
        (["--sigma", "3", "--size", "40by30"], "--size must look like WIDTHxHEIGHT"),
    ],
)
def test_option_errors(tmp_path, fixation_csv, capsys, extra, message):
    args = [fixation_csv, "-o", tmp_path / "o", *extra]
    if "--size" not in extra:
        args += ["--size", "40x30"]
    code, _, err = run_cli(args, capsys)
    assert code == 2
    assert message in err and err.startswith("mlfem gfdm: error:")


def test_input_errors_name_the_file(tmp_path, capsys):
    def error(args):
        code, _, err = run_cli([*args, "-o", tmp_path / "o", "--sigma", 2], capsys)
        assert code == 2
        return err

    missing = tmp_path / "nope.csv"
    assert f"{missing}: file not found" in error([missing])
    assert "no such file or folder" in error([tmp_path / "nope"])
    bad_cols = write_csv(tmp_path / "cols.csv", [{"img": "a", "x": 1, "y": 1}], ["img", "x", "y"])
    err = error([bad_cols, "--size", "4x4"])
    assert f"{bad_cols}: missing column(s) image, observer" in err
    assert "expected a header with image, observer, x, y" in err
    bad_num = write_csv(
        tmp_path / "num.csv",
        [{"image": "a", "observer": 1, "x": "left", "y": 1}],
        ["image", "observer", "x", "y"],
    )
    assert f"{bad_num}, line 2: column 'x' should be a number, got 'left'" in error(
        [bad_num, "--size", "4x4"]
    )
    no_size = write_csv(
        tmp_path / "size.csv",
        [{"image": "a", "observer": 1, "x": 1, "y": 1}],
        ["image", "observer", "x", "y"],
    )
    assert "image size unknown for 'a'" in error([no_size])
    outside = write_csv(
        tmp_path / "out.csv",
        [{"image": "far", "observer": 1, "x": 90, "y": 1}],
        ["image", "observer", "x", "y"],
    )
    assert "image far: all 1 fixations fall outside the 4x4 (WxH) image" in error(
        [outside, "--size", "4x4"]
    )
    text = tmp_path / "fix.txt"
    text.write_text("1 2\n")
    assert "expected an OSIE-layout folder (stimuli/ + fixations.mat) or a .csv file" in error(
        [text]
    )
    empty_dir = tmp_path / "empty"
    empty_dir.mkdir()
    assert f"{empty_dir}: no fixations.mat" in error([empty_dir])
    wrong_mat = tmp_path / "wrongmat"
    wrong_mat.mkdir()
    savemat(wrong_mat / "fixations.mat", {"gaze": np.zeros(3)})
    assert "no variable 'fixations' (OSIE layout expected)" in error([wrong_mat])
    garbage = tmp_path / "garbage"
    garbage.mkdir()
    (garbage / "fixations.mat").write_bytes(b"not a mat file at all")
    assert f"{garbage / 'fixations.mat'}: not a readable MATLAB file" in error([garbage])


def test_duration_weighting_without_durations(tmp_path, capsys):
    path = write_csv(
        tmp_path / "d.csv",
        [{"image": "a", "observer": 1, "x": 1, "y": 1}],
        ["image", "observer", "x", "y"],
    )
    code, _, err = run_cli(
        [path, "-o", tmp_path / "o", "--sigma", 2, "--size", "4x4", "--duration-weighting"], capsys
    )
    assert code == 2 and f"{path}: --duration-weighting needs fixation durations" in err


def test_osie_missing_stimulus(tmp_path, capsys):
    folder = tmp_path / "osie"
    (folder / "stimuli").mkdir(parents=True)
    records = np.empty((1, 1), dtype=object)
    subjects = np.empty((1, 1), dtype=object)
    subjects[0, 0] = {
        "fix_x": np.array([1.0]),
        "fix_y": np.array([1.0]),
        "fix_duration": np.array([100]),
    }
    records[0, 0] = {"img": "9.jpg", "subjects": subjects}
    savemat(folder / "fixations.mat", {"fixations": records})
    code, _, err = run_cli([folder, "-o", tmp_path / "o", "--sigma", 2], capsys)
    assert code == 2 and f"{folder / 'stimuli' / '9.jpg'}: stimulus of" in err
    code, _, err = run_cli([folder, "-o", tmp_path / "o", "--sigma", 2, "--size", "5x5"], capsys)
    assert code == 0, err


def test_help_lists_the_options(capsys):
    with pytest.raises(SystemExit):
        main(["gfdm", "--help"])
    text = capsys.readouterr().out
    for option in (
        "--sigma",
        "--screen-width-px",
        "--collapse",
        "--duration-weighting",
        "--padding",
    ):
        assert option in text


def test_float_maps_match_torch_dtype(tmp_path, fixation_csv, capsys):
    code, _, _ = run_cli(
        [
            fixation_csv,
            "-o",
            tmp_path / "o",
            "--sigma",
            3,
            "--size",
            "40x30",
            "--device",
            "cpu",
            "--no-png",
        ],
        capsys,
    )
    assert code == 0
    assert torch.from_numpy(np.load(tmp_path / "o" / "a.npy")).dtype == torch.float32
    code, _, err = run_cli(
        [
            fixation_csv,
            "-o",
            tmp_path / "o2",
            "--sigma",
            3,
            "--size",
            "40x30",
            "--device",
            "nodevice",
        ],
        capsys,
    )
    assert code == 2 and "--device 'nodevice' is not usable" in err
