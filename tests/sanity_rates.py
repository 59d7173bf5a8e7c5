"""Measure the rates behind the per-method floors of tests/test_baselines_sanity.py.

For each training seed, trains the quadrant classifier of that test and prints, for every
method it checks, on how many of the 32 test images the map peaks on the square. The floors
in the test are set from the lowest count over the seeds printed here.

    uv run python tests/sanity_rates.py --seeds 0 1 2 3
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from test_baselines_sanity import SANITY_METHODS, TEST_IMAGES, method_rate, train_quadrant_net  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3])
    args = parser.parse_args()
    hits: dict[str, list[int]] = {method: [] for method in SANITY_METHODS}
    for seed in args.seeds:
        trained = train_quadrant_net(seed)
        for method in SANITY_METHODS:
            hits[method].append(round(method_rate(trained, method) * TEST_IMAGES))
        print(f"seed {seed} done", file=sys.stderr, flush=True)
    print(f"hits out of {TEST_IMAGES} test images, training seeds {args.seeds}")
    print(f"{'method':<16} " + " ".join(f"{seed:>4}" for seed in args.seeds) + "   min")
    for method, counts in hits.items():
        print(f"{method:<16} " + " ".join(f"{c:>4}" for c in counts) + f"  {min(counts):>4}")


if __name__ == "__main__":
    main()
