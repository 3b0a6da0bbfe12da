"""The `wheel` marker: the packaging proofs run only when asked for, with `-m wheel`.

They build the wheel and the sdist, make venvs and a Debian chroot: about a minute (a minute
more the first time, for the chroot), too slow for every `pytest` run.
"""

from __future__ import annotations

import pytest


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "wheel: builds the wheel and proves it on a bare Debian chroot (slow; root)"
    )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if "wheel" in config.getoption("markexpr"):
        return
    skip = pytest.mark.skip(reason="packaging proof, run with: python3 -m pytest -m wheel")
    for item in items:
        if "wheel" in item.keywords:
            item.add_marker(skip)
