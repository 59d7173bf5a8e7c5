"""Writers of tiny dataset fixtures in the real on-disk layouts (design.md section 5).

Imported by the ``test_datasets_*`` modules; the tests here check that the fixtures mimic the
real files (the MATLAB struct/cell nesting of OSIE's ``fixations.mat`` is compared with the
real sample when it is present).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from PIL import Image

from _osie import require_osie


def write_image(path: Path, height: int, width: int, seed: int = 0, mode: str = "RGB") -> Path:
    """A random image; the format follows the suffix (JPEG quality 95)."""
    rng = np.random.default_rng(seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    shape = (height, width, 3) if mode == "RGB" else (height, width)
    Image.fromarray(rng.integers(0, 256, size=shape, dtype=np.uint8), mode=mode).save(
        path, quality=95
    )
    return path


def write_gray(path: Path, array: np.ndarray) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.asarray(array, dtype=np.uint8), mode="L").save(path, quality=95)
    return path


def cell(items: list) -> np.ndarray:
    """A MATLAB N x 1 cell array for ``scipy.io.savemat`` (dict elements become structs)."""
    out = np.empty((len(items), 1), dtype=object)
    for i, item in enumerate(items):
        out[i, 0] = item
    return out


def savemat(path: Path, variables: dict) -> Path:
    import scipy.io

    path.parent.mkdir(parents=True, exist_ok=True)
    scipy.io.savemat(str(path), variables)
    return path


# --------------------------------------------------------------------------- OSIE
def make_osie(root: Path, entries: dict[str, list], size=(30, 40), official=False) -> Path:
    """OSIE layout. ``entries``: image name -> list of subjects ``(fix_x, fix_y, durations)``
    in MATLAB 1-based pixels (``None`` for an observer without data)."""
    stimuli = root / ("data/stimuli" if official else "stimuli")
    mat = root / ("data/eye/fixations.mat" if official else "fixations.mat")
    structs = []
    for k, (name, subjects) in enumerate(entries.items()):
        write_image(stimuli / name, *size, seed=k)
        subs = []
        for s in subjects:
            if s is None:
                subs.append(np.zeros((0, 0)))
                continue
            xs, ys, durs = s
            subs.append(
                {
                    "fix_x": np.asarray(xs, dtype=np.float64).reshape(1, -1),
                    "fix_y": np.asarray(ys, dtype=np.float64).reshape(1, -1),
                    "fix_duration": np.asarray(durs, dtype=np.uint16).reshape(1, -1),
                }
            )
        structs.append({"img": name, "subjects": cell(subs)})
    savemat(mat, {"fixations": cell(structs)})
    return root


# --------------------------------------------------------------------------- SALICON
def coco_name(subset: str, number: int) -> str:
    return f"COCO_{subset}2014_{number:012d}.jpg"


def make_salicon_images(root: Path, subset: str, numbers: list[int], size=(48, 64)) -> list[str]:
    names = []
    for k, number in enumerate(numbers):
        write_image(root / "images" / subset / coco_name(subset, number), *size, seed=number + k)
        names.append(coco_name(subset, number))
    return names


def write_salicon_json(
    path: Path, subset: str, fixations: dict[int, list[list[list[float]]]], size=(48, 64)
) -> Path:
    """``fixations``: image number -> one list of pairs per worker (already in file order)."""
    images = [
        {"id": n, "file_name": coco_name(subset, n), "height": size[0], "width": size[1]}
        for n in fixations
    ]
    annotations = []
    for n, workers in fixations.items():
        for w, pairs in enumerate(workers):
            annotations.append(
                {"id": len(annotations) + 1, "image_id": n, "worker_id": 100 + w,
                 "fixations": pairs}
            )
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"type": "fixations", "images": images,
                                "annotations": annotations}))
    return path


def write_lsun_mat(path: Path, name: str, observers: list[np.ndarray], size=(48, 64)) -> Path:
    """LSUN-style ``.mat``: ``gaze(k).location / timestamp / fixations`` ([x y], 1-based)."""
    dtype = [("location", object), ("timestamp", object), ("fixations", object)]
    gaze = np.zeros((len(observers), 1), dtype=dtype)
    for k, fix in enumerate(observers):
        fix = np.asarray(fix, dtype=np.float64).reshape(-1, 2)
        gaze[k, 0]["location"] = fix + 0.3
        gaze[k, 0]["timestamp"] = np.arange(len(fix), dtype=np.float64).reshape(-1, 1)
        gaze[k, 0]["fixations"] = fix
    return savemat(path, {"image": name, "resolution": np.array([[size[0], size[1]]], float),
                          "gaze": gaze})


def write_instances(path: Path, labels: dict[int, list[int]]) -> Path:
    """COCO instances with non-contiguous category ids (1, 3, 7, 90)."""
    categories = [{"id": 90, "name": "toothbrush", "supercategory": "indoor"},
                  {"id": 1, "name": "person", "supercategory": "person"},
                  {"id": 7, "name": "train", "supercategory": "vehicle"},
                  {"id": 3, "name": "car", "supercategory": "vehicle"}]
    annotations = []
    for number, cats in labels.items():
        for c in cats:
            annotations.append({"id": len(annotations) + 1, "image_id": number,
                                "category_id": c, "bbox": [0, 0, 1, 1]})
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"images": [], "annotations": annotations,
                                "categories": categories}))
    return path


# --------------------------------------------------------------------------- tests of fixtures
def _structure(value: object) -> str:
    """A description of loadmat output nesting (types, shapes, field names), not values."""
    if isinstance(value, np.ndarray):
        if value.dtype.names:
            element = value.reshape(-1)[0]
            inner = ",".join(f"{n}:{_structure(element[n])}" for n in value.dtype.names)
            return f"struct{value.shape}{{{inner}}}"
        if value.dtype == object:
            return f"cell{value.ndim}d[{_structure(value.reshape(-1)[0])}]"
        return f"{value.dtype.kind}{value.ndim}d"
    return type(value).__name__


def test_osie_fixture_nests_like_the_real_file(tmp_path: Path) -> None:
    import scipy.io

    osie_dir = require_osie()
    make_osie(tmp_path, {"1.jpg": [([1.5, 2.5], [3.0, 4.0], [100, 200])]})
    ours = scipy.io.loadmat(str(tmp_path / "fixations.mat"))["fixations"]
    real = scipy.io.loadmat(str(osie_dir / "fixations.mat"))["fixations"]
    assert _structure(ours) == _structure(real)
    assert "subjects:cell2d[struct(1, 1){fix_x:f2d,fix_y:f2d,fix_duration:u2d}]" in _structure(real)


def test_lsun_fixture_is_a_struct_array(tmp_path: Path) -> None:
    import scipy.io

    write_lsun_mat(tmp_path / "a.mat", "a", [np.array([[1, 2], [3, 4]]), np.array([[5, 6]])])
    gaze = scipy.io.loadmat(str(tmp_path / "a.mat"))["gaze"]
    assert gaze.shape == (2, 1) and set(gaze.dtype.names) == {"location", "timestamp", "fixations"}
    assert gaze[1, 0]["fixations"].tolist() == [[5.0, 6.0]]
