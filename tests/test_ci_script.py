"""The CI script: its shell syntax, and how .ci/ensure-uv finds or installs uv on a machine
without it (a stock Debian Python refuses `pip install` under PEP 668). The Pythons here are
stand-ins written by the test, so nothing is downloaded: each one records what it was asked
and "installs" a stand-in uv the way pip would."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
BASH = shutil.which("bash") or "/bin/bash"

# A python3 stand-in. The system one (FAKE_SYSTEM) refuses the steps listed in FAKE_REFUSE
# ("pip": PEP 668, "venv": no python3-venv, "user": no pip at all); a venv's copy refuses nothing.
FAKE_PYTHON = r"""#!/bin/sh
here="$(cd "$(dirname "$0")" && pwd)"
echo "$0 $*" >> "$FAKE_LOG"
refuses() { [ "$0" = "$FAKE_SYSTEM" ] && case " $FAKE_REFUSE " in *" $1 "*) true;; *) false;; esac; }
install_uv() { printf '#!/bin/sh\necho "uv 0.0 (stand-in)"\n' > "$here/uv"; chmod +x "$here/uv"; }
case "$1 $2" in
  "-c "*) [ -x "$here/uv" ] && printf '%s' "$here/uv" && exit 0; exit 1;;
  "-m venv")
    refuses venv && { echo "ensurepip is not available" >&2; exit 1; }
    dir="$4"; mkdir -p "$dir/bin"; cp "$0" "$dir/bin/python"; exit 0;;
  "-m pip")
    case "$*" in
      *--break-system-packages*) refuses user && exit 1; install_uv; exit 0;;
      *) refuses pip && { echo "error: externally-managed-environment" >&2; exit 1; }; install_uv; exit 0;;
    esac;;
esac
exit 1
"""


def ensure_uv(tmp_path: Path, refuse: str) -> tuple[subprocess.CompletedProcess, list[str]]:
    system = tmp_path / "system" / "python3"
    system.parent.mkdir()
    system.write_text(FAKE_PYTHON)
    system.chmod(0o755)
    log = tmp_path / "log"
    log.touch()
    # A PATH of the few tools the scripts use, so that no uv installed on this machine is found.
    tools = tmp_path / "tools"
    tools.mkdir(exist_ok=True)
    for tool in ("sh", "dirname", "mkdir", "cp", "chmod"):
        if not (tools / tool).exists():
            (tools / tool).symlink_to(shutil.which(tool))
    env = {
        "PATH": f"{system.parent}:{tools}",
        "HOME": str(tmp_path / "home"),
        "MLFEM_CI_CACHE": str(tmp_path / "cache"),
        "FAKE_SYSTEM": str(system),
        "FAKE_REFUSE": refuse,
        "FAKE_LOG": str(log),
    }
    result = subprocess.run([BASH, str(REPO / ".ci" / "ensure-uv")], env=env, capture_output=True,
                            text=True, timeout=60, check=False)
    return result, log.read_text().splitlines()


@pytest.mark.parametrize("script", ["run", "ensure-uv"])
def test_the_scripts_parse(script: str) -> None:
    result = subprocess.run([BASH, "-n", str(REPO / ".ci" / script)], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize(
    ("refuse", "installed_by"),
    [
        ("", "system"),  # pip allowed (a venv or pyenv Python): installed there
        ("pip", "cache/uv-venv/bin"),  # PEP 668: a venv of its own under the cache folder
        ("pip venv", "system"),  # no python3-venv either: pip --user --break-system-packages
    ],
)
def test_uv_is_installed_by_the_first_step_that_works(tmp_path: Path, refuse: str, installed_by: str) -> None:
    result, calls = ensure_uv(tmp_path, refuse)
    assert result.returncode == 0, result.stderr
    uv = Path(result.stdout.strip())
    assert uv == tmp_path / installed_by / "uv" and os.access(uv, os.X_OK)
    assert ("--break-system-packages" in " ".join(calls)) == (refuse == "pip venv")


def test_a_second_run_reuses_the_cached_venv(tmp_path: Path) -> None:
    first, _ = ensure_uv(tmp_path, "pip")
    (tmp_path / "log").unlink()
    shutil.rmtree(tmp_path / "system")
    second, calls = ensure_uv(tmp_path, "pip")
    assert second.stdout == first.stdout
    assert not any(" -m " in call for call in calls)  # nothing installed again


def test_all_steps_failing_is_an_error_saying_what_to_install(tmp_path: Path) -> None:
    result, _ = ensure_uv(tmp_path, "pip venv user")
    assert result.returncode == 1 and result.stdout == ""
    assert "could not install uv" in result.stderr and "python3-venv" in result.stderr
