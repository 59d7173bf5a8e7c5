"""The report in a real browser: headless Chromium loads it offline, the page's own self-test
(``?selftest``) checks every picture and the gallery, and no console message appears.

Needs ``chromium`` on the PATH (Debian's package; ``.ci/run`` installs it). The screenshot is
kept as ``test-artifacts/report.png`` for a human to look at.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from _evaluation_run import GALLERY, make_run
from mlfem.reporting import write_report

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
ARTIFACTS = Path(__file__).resolve().parents[1] / "test-artifacts"

pytestmark = pytest.mark.skipif(
    CHROMIUM is None,
    reason="chromium is not installed (apt-get install chromium; CI installs it in .ci/run)",
)


def _chromium(profile: Path, *arguments: str) -> subprocess.CompletedProcess:
    command = [
        CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
        "--disable-background-networking", "--disable-component-update", "--disable-sync",
        "--no-first-run", "--no-default-browser-check", f"--user-data-dir={profile}",
        "--enable-logging=stderr", "--v=0", "--virtual-time-budget=15000", *arguments,
    ]
    return subprocess.run(command, capture_output=True, text=True, timeout=180, check=False)


@pytest.fixture(scope="module")
def report(tmp_path_factory) -> Path:
    run = make_run(tmp_path_factory.mktemp("browser") / "run")
    return write_report(run, resamples=100)


def test_report_passes_its_self_test_in_headless_chromium(report, tmp_path) -> None:
    result = _chromium(tmp_path / "profile", "--dump-dom", report.as_uri() + "?selftest")
    assert result.returncode == 0, result.stderr[-2000:]
    found = re.search(r'<pre id="selftest-result">(.*?)</pre>', result.stdout, re.S)
    assert found, "the self-test wrote no result: " + result.stdout[-500:]
    outcome = json.loads(found.group(1).replace("&quot;", '"').replace("&amp;", "&"))
    assert outcome["broken"] == [] and outcome["images"] > 8 + GALLERY * 4
    assert outcome["gallery"] == {"items": GALLERY, "switched": True, "next": "1", "back": "0"}
    assert outcome["errors"] == [] and outcome["ok"] is True
    assert "<title>SELFTEST PASS" in result.stdout
    console = [line for line in result.stderr.splitlines() if ":CONSOLE" in line]
    assert console == [], console


def test_the_self_test_notices_a_broken_picture(report, tmp_path) -> None:
    # The check must be able to fail: the same page with one picture's data corrupted.
    page = report.read_text()
    broken = tmp_path / "broken.html"
    broken.write_text(page.replace("data:image/png;base64,", "data:image/png;base64,AAAA", 1))
    result = _chromium(tmp_path / "profile", "--dump-dom", broken.as_uri() + "?selftest")
    outcome = json.loads(re.search(r'<pre id="selftest-result">(.*?)</pre>', result.stdout, re.S).group(1))
    assert outcome["ok"] is False and len(outcome["broken"]) == 1


def test_screenshot_of_the_report(report, tmp_path) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    target = ARTIFACTS / "report.png"
    target.unlink(missing_ok=True)
    result = _chromium(tmp_path / "profile", "--hide-scrollbars", "--window-size=1280,2200",
                       f"--screenshot={target}", report.as_uri())
    assert result.returncode == 0, result.stderr[-2000:]
    from PIL import Image

    with Image.open(target) as shot:
        assert shot.size == (1280, 2200)
        # Not a blank page: the figures put plenty of non-white pixels on it.
        grey = shot.convert("L").point(lambda v: 255 if v < 250 else 0)
        assert grey.getbbox() is not None and sum(grey.histogram()[255:]) > 50_000
