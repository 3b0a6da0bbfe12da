"""Shared fixtures: root detection for live tests, and a guard that fails any test leaking fds."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest


def _open_fds() -> set[str]:
    return set(os.listdir("/proc/self/fd"))


@pytest.fixture(autouse=True)
def no_leaked_fds() -> Iterator[None]:
    """Every fd, mmap and perf event a test opens must be closed by the time it ends."""
    before = _open_fds()
    yield
    leaked = {
        fd: os.readlink(f"/proc/self/fd/{fd}")
        for fd in _open_fds() - before
        if os.path.exists(f"/proc/self/fd/{fd}")
    }
    if leaked:
        pytest.fail(f"the test leaked file descriptors: {leaked}")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if os.geteuid() == 0:
        return
    skip = pytest.mark.skip(reason="live tests load BPF programs and need root")
    for item in items:
        if "live" in item.keywords:
            item.add_marker(skip)
