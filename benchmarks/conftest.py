"""Benchmark guards (skip what this machine cannot run) and the tables printed at the end."""

from __future__ import annotations

import os
import shutil
from typing import Any

import pytest
from bench_report import TABLES, machine


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if not TABLES:
        return
    terminalreporter.section(f"rawtrace benchmarks on {machine()}")
    for table in TABLES:
        terminalreporter.write_line("")
        terminalreporter.write_line(table.render())


@pytest.fixture
def root() -> None:
    if os.geteuid() != 0:
        pytest.skip("tracing needs root")


@pytest.fixture
def gcc() -> str:
    path = shutil.which("gcc") or shutil.which("cc")
    if path is None:
        pytest.skip("no C compiler to build the vfork storm")
    return path
