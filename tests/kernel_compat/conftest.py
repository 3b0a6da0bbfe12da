"""Fixtures for kernel_compat tests: a tmp directory laid out like /proc and /sys."""

from __future__ import annotations

import gzip
from pathlib import Path

import pytest


class FakeRoot:
    """A root directory for the readers' `root=` argument, filled file by file."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def write(self, absolute: str, text: str) -> Path:
        """Write `text` at `absolute` (e.g. "/proc/self/status") under the root."""
        target = self.path / absolute.lstrip("/")
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text)
        return target

    def write_gzip(self, absolute: str, text: str) -> Path:
        target = self.path / absolute.lstrip("/")
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(gzip.compress(text.encode()))
        return target

    def mkdir(self, absolute: str) -> Path:
        target = self.path / absolute.lstrip("/")
        target.mkdir(parents=True, exist_ok=True)
        return target


@pytest.fixture
def fake_root(tmp_path: Path) -> FakeRoot:
    return FakeRoot(tmp_path)
