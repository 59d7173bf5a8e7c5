"""Build the OSIE sample that ships in the package (src/mlfem/resources/osie_sample/).

Twelve images of the OSIE test sample (1001-1040): every third one from 1001, chosen by that
rule and not by content. Stimuli are copied byte for byte; fixations.mat keeps the authors'
structure (a cell ``fixations`` of structs ``img``, ``subjects{j}.fix_x/fix_y/fix_duration``)
restricted to these images. Usage:

    uv run python scripts/make_osie_sample.py ../shared/data/osie src/mlfem/resources/osie_sample
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import numpy as np
import scipy.io

SAMPLE_IDS = [1001 + 3 * k for k in range(12)]


def main(source: Path, target: Path) -> None:
    contents = scipy.io.loadmat(source / "fixations.mat")
    cells = contents["fixations"]
    names = [str(cell[0, 0]["img"][0]) for cell in cells[:, 0]]
    rows = [names.index(f"{image_id}.jpg") for image_id in SAMPLE_IDS]
    (target / "stimuli").mkdir(parents=True, exist_ok=True)
    for image_id in SAMPLE_IDS:
        shutil.copyfile(source / "stimuli" / f"{image_id}.jpg", target / "stimuli" / f"{image_id}.jpg")
    subset = np.empty((len(rows), 1), dtype=object)
    for k, row in enumerate(rows):
        subset[k, 0] = cells[row, 0]
    scipy.io.savemat(target / "fixations.mat", {"fixations": subset}, do_compression=True)
    shutil.copyfile(source / "LICENSE", target / "LICENSE")
    print(f"wrote {len(rows)} images to {target}")


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]))
