"""``mlfem methods``: the registered methods with their one-line descriptions."""

from __future__ import annotations

import subprocess
import sys

import pytest

from mlfem.cli import build_parser, main
from mlfem.explainers.registry import available_methods


def test_methods_lists_every_registered_method(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["methods"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["NAME", "GRAD", "DESCRIPTION"]
    methods = available_methods()
    assert len(lines) == 1 + len(methods)
    for line, info in zip(lines[1:], methods):
        name, grad, description = line.split(maxsplit=2)
        assert (name, grad, description) == (info.name, "yes" if info.uses_gradients else "no", info.description)
    names = [info.name for info in methods]
    for expected in ("gradcam", "gradcampp", "layercam", "layercam-multi", "ig", "smoothgrad", "lrp",
                     "guided-backprop", "deconvnet", "occlusion", "lime", "csfem", "fem", "mlfem"):
        assert expected in names


def test_methods_names_only(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["methods", "--names"]) == 0
    assert capsys.readouterr().out.split() == sorted(info.name for info in available_methods())


def test_methods_is_a_listed_subcommand() -> None:
    help_text = build_parser().format_help()
    assert "methods" in help_text and "list the explanation methods" in help_text


def test_methods_from_the_command_line_stays_light() -> None:
    # Listing must not import captum, zennit or scikit-image (or torchvision).
    code = (
        "import sys\n"
        "from mlfem.cli import main\n"
        "assert main(['methods', '--names']) == 0\n"
        "heavy = [m for m in ('captum', 'zennit', 'skimage', 'torchvision') if m in sys.modules]\n"
        "assert not heavy, heavy\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "lrp" in result.stdout.split()
