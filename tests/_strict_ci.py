"""Strict CI: under ``CI`` (``1``, ``true`` or ``yes``), a skipped test fails the run.

A test skips when something it needs is missing: an optional package (``importorskip``),
the Chromium browser, the OSIE data beside the clone. On a developer's machine that is
right; on CI it would hide a broken install step behind a green run. So when ``CI`` is set
(``.ci/run`` exports ``CI=true``; CI services set it too) every skip, whether in collection,
setup or the test itself, is turned into a failure that repeats the skip's reason.

The only skips allowed there are the tests marked
``@pytest.mark.ci_may_skip(reason="...")``: CI has no GPU, so the CUDA tests
(``tests/_cuda.py``'s ``requires_cuda``) carry the marker. The reason is required, so the
allowlist says why each entry is on it. Expected failures (``xfail``) are not skips and are
left alone.

``tests/conftest.py`` loads these hooks; ``tests/test_strict_ci.py`` runs pytest on small
test files to check that the switch still does what it says.
"""

from __future__ import annotations

import os

import pytest

#: The environment variable that makes the test run strict, and the values that mean "on".
SWITCH = "CI"
_ON = ("1", "true", "yes")
MARKER = "ci_may_skip"


def strict() -> bool:
    """Whether this run is strict: ``CI`` is set to 1, true or yes (any case)."""
    return os.environ.get(SWITCH, "").strip().lower() in _ON


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        f"{MARKER}(reason): this test may skip even when {SWITCH} is set (strict CI); the "
        "reason says why its skip is legitimate on CI (e.g. no GPU there)",
    )


def pytest_report_header(config: pytest.Config) -> str | None:
    if strict():
        return f"strict CI ({SWITCH}={os.environ[SWITCH]}): a skip fails unless the test is marked {MARKER}"
    return None


def _skip_reason(longrepr: object) -> str:
    # A skip's longrepr is (path, line, "Skipped: reason").
    if isinstance(longrepr, tuple) and len(longrepr) == 3:
        return str(longrepr[2]).removeprefix("Skipped: ")
    return str(longrepr)


def _allowed(item: pytest.Item) -> bool:
    marker = item.get_closest_marker(MARKER)
    if marker is None:
        return False
    reason = marker.kwargs.get("reason") or (marker.args[0] if marker.args else "")
    if not str(reason).strip():
        raise pytest.UsageError(f"{item.nodeid}: @pytest.mark.{MARKER} needs reason='why CI may skip it'")
    return True


def _failure_text(reason: str, where: str) -> str:
    return (
        f"skipped {where} under strict CI ({SWITCH} is set): {reason}\n"
        f"Install what is missing (the CI script .ci/run must do it), or, if this skip is "
        f"legitimate on CI, mark the test @pytest.mark.{MARKER}(reason=...)."
    )


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):
    report = yield
    if report.skipped and not hasattr(report, "wasxfail") and strict() and not _allowed(item):
        report.outcome = "failed"
        report.longrepr = _failure_text(_skip_reason(report.longrepr), f"in {report.when}")
    return report


@pytest.hookimpl(wrapper=True)
def pytest_make_collect_report(collector: pytest.Collector):
    # A module that skips as a whole (a module-level importorskip) skips while it is collected.
    report = yield
    if report.skipped and strict():
        report.outcome = "failed"
        report.longrepr = _failure_text(_skip_reason(report.longrepr), "while collecting")
    return report
