"""The strict-CI switch (tests/_strict_ci.py) checked on small test files run by pytest itself,
so that it cannot stop working unnoticed: under CI=true every kind of skip fails except those
marked ci_may_skip; without it they stay skips; and .ci/run sets the switch."""

from __future__ import annotations

from pathlib import Path

import pytest

from _cuda import requires_cuda

pytest_plugins = ["pytester"]

REPO = Path(__file__).resolve().parents[1]

TESTS = """
import pytest

def test_passes():
    pass

def test_skips_in_the_body():
    pytest.skip("chromium is not installed")

@pytest.mark.skipif(True, reason="no pytorch_grad_cam")
def test_skipif():
    pass

@pytest.fixture
def data():
    pytest.skip("OSIE data not found")

def test_skips_in_a_fixture(data):
    pass

@pytest.mark.ci_may_skip(reason="CI has no GPU")
@pytest.mark.skipif(True, reason="no CUDA device")
def test_allowed_skip():
    pass

@pytest.mark.xfail(reason="known bug", strict=True)
def test_expected_failure():
    assert False
"""

# The inner runs load the hooks as tests/conftest.py does.
CONFTEST = """
from _strict_ci import (
    pytest_configure, pytest_make_collect_report, pytest_report_header, pytest_runtest_makereport,
)
"""

MODULE_SKIP = """
import pytest
pytest.importorskip("a_package_that_is_not_installed")

def test_never_collected():
    pass
"""


def run(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, ci: str | None, **files: str):
    if ci is None:
        monkeypatch.delenv("CI", raising=False)
    else:
        monkeypatch.setenv("CI", ci)
    pytester.makeconftest(CONFTEST)
    pytester.makepyfile(**files)
    return pytester.runpytest("-rA")


@pytest.mark.parametrize("value", ["true", "1", "YES"])
def test_under_ci_every_skip_fails_except_the_allowed_ones(pytester, monkeypatch, value) -> None:
    result = run(pytester, monkeypatch, value, test_checks=TESTS)
    # A skip in setup (skipif, a fixture) fails as an error, one in the test body as a failure.
    result.assert_outcomes(passed=1, failed=1, errors=2, skipped=1, xfailed=1)
    out = result.stdout.str()
    assert "strict CI (CI=" in out
    for name, reason in [("test_skips_in_the_body", "chromium is not installed"),
                         ("test_skipif", "no pytorch_grad_cam"),
                         ("test_skips_in_a_fixture", "OSIE data not found")]:
        assert f"test_checks.py::{name} - skipped in" in out
        assert reason in out  # the failure repeats why the test would have skipped
    assert "SKIPPED [1] test_checks.py" in out and "no CUDA device" in out


def test_without_ci_skips_stay_skips(pytester, monkeypatch) -> None:
    for value in (None, "", "false", "0"):
        result = run(pytester, monkeypatch, value, test_checks=TESTS)
        result.assert_outcomes(passed=1, skipped=4, xfailed=1)
        assert "strict CI" not in result.stdout.str()


def test_a_module_skipped_while_collecting_fails_under_ci(pytester, monkeypatch) -> None:
    result = run(pytester, monkeypatch, "true", test_module=MODULE_SKIP)
    result.assert_outcomes(errors=1)
    assert "a_package_that_is_not_installed" in result.stdout.str()
    assert result.ret != 0
    monkeypatch.delenv("CI")
    relaxed = pytester.runpytest()
    relaxed.assert_outcomes(skipped=1)
    assert relaxed.ret == pytest.ExitCode.NO_TESTS_COLLECTED or relaxed.ret == 0


def test_the_marker_needs_a_reason(pytester, monkeypatch) -> None:
    bare = "import pytest\n\n@pytest.mark.ci_may_skip\ndef test_x():\n    pytest.skip('why not')\n"
    result = run(pytester, monkeypatch, "true", test_bare=bare)
    assert result.ret != 0
    assert "needs reason=" in result.stdout.str() + result.stderr.str()


def test_the_cuda_tests_are_the_allowed_skips() -> None:
    @requires_cuda
    def probe() -> None: ...

    names = {mark.name: mark for mark in probe.pytestmark}  # type: ignore[attr-defined]
    assert set(names) == {"ci_may_skip", "skipif"}
    assert "GPU" in names["ci_may_skip"].kwargs["reason"]


def test_the_ci_script_sets_the_switch() -> None:
    script = (REPO / ".ci" / "run").read_text()
    assert "export CI=true" in script
