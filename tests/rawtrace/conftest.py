"""The ring drains, as a fixture that runs a test once with each implementation."""

from __future__ import annotations

import shutil

import pytest

from rawtrace.transports.drain import COMPILED, PYTHON, Drains


@pytest.fixture(params=["python", "compiled"])
def drains(request: pytest.FixtureRequest) -> Drains:
    if request.param == "python":
        return PYTHON
    if COMPILED is None:
        if shutil.which("cc") or shutil.which("gcc"):
            pytest.fail(
                "the compiled drain is not built, yet there is a C compiler: pip install -e ."
            )
        pytest.skip("the compiled drain is not built (no C compiler at install time)")
    return COMPILED
