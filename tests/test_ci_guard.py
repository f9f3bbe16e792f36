from __future__ import annotations

from pathlib import Path

import pytest

SKIPPING_TESTS = """
import pytest

@pytest.mark.postgres
def test_needs_postgres():
    pytest.skip("no server")

@pytest.mark.browser
def test_needs_chromium():
    pytest.skip("no browser")
"""


def _run(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, ci: str) -> pytest.RunResult:
    monkeypatch.setenv("CI", ci)
    # The copied conftest imports the support modules beside it (clocks).
    monkeypatch.setenv("PYTHONPATH", str(Path(__file__).parent))
    pytester.makeconftest(Path(__file__).with_name("conftest.py").read_text())
    pytester.makepyfile(SKIPPING_TESTS)
    return pytester.runpytest_subprocess("-p", "no:cacheprovider")


def test_postgres_and_browser_tests_fail_instead_of_skipping_under_ci(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    result = _run(pytester, monkeypatch, "true")
    result.assert_outcomes(failed=2)
    result.stdout.fnmatch_lines(["*CI=true forbids skipping this test*"])


def test_outside_ci_they_skip(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> None:
    _run(pytester, monkeypatch, "").assert_outcomes(skipped=2)
