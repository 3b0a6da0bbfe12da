"""Registers the `vm` marker of the harness tests and makes the harness modules importable."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

# test_harness.py imports the harness modules, which run and matrix load from their own
# directory; this works whatever pytest's --import-mode.
sys.path.insert(0, str(Path(__file__).resolve().parent))


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "vm: boots kernels in QEMU through tests/vm/run (slow; needs qemu-system-x86)"
    )
