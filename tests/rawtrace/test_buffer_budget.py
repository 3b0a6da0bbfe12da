"""--buffer: the rings of all CPUs together stay within the budget."""

from __future__ import annotations

import mmap

import pytest

from rawtrace.cli.command_line import _parser
from rawtrace.transports.opening import pages_within

PAGE = mmap.PAGESIZE


@pytest.mark.parametrize(
    ("budget", "cpus", "pages"),
    [
        (1 << 20, 2, 128),  # 1 MiB on 2 CPUs: 512 KiB each
        (1 << 20, 3, 64),  # 341 KiB each, down to a power of two
        (1 << 20, 512, 1),  # never below one page per CPU
        (100 * PAGE, 1, 64),
    ],
)
def test_pages_within_budget(budget: int, cpus: int, pages: int) -> None:
    assert pages_within(budget, cpus) == pages
    assert pages * cpus * PAGE <= max(budget, cpus * PAGE)


@pytest.mark.parametrize(("text", "size"), [("512K", 512 << 10), ("8m", 8 << 20), ("4096", 4096)])
def test_buffer_sizes_parse(text: str, size: int) -> None:
    assert _parser().parse_args(["trace", "vfork", "--buffer", text]).buffer == size
