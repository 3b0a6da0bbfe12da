"""The house rules a reader relies on, held for every package and the QEMU harness: small
directories, short modules, and no module name used twice."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

TOP = Path(__file__).resolve().parent.parent
TREES = ("rawtrace", "bpf_bytecode", "kernel_compat", "tests/vm")
MAX_MODULES = 12  # per directory, __init__ included
MAX_LINES = 450


def _sources() -> list[Path]:
    return [
        source
        for tree in TREES
        for source in (TOP / tree).rglob("*.py")
        if "__pycache__" not in source.parts
    ]


@pytest.mark.parametrize("tree", TREES)
def test_every_directory_holds_at_most_12_modules(tree: str) -> None:
    per_directory = Counter(source.parent for source in _sources() if tree in str(source))
    crowded = {str(d.relative_to(TOP)): n for d, n in per_directory.items() if n > MAX_MODULES}
    assert crowded == {}


def test_no_module_is_over_450_lines() -> None:
    long = {
        str(source.relative_to(TOP)): lines
        for source in _sources()
        if (lines := len(source.read_text().splitlines())) > MAX_LINES
    }
    assert long == {}


def test_no_two_modules_share_a_name() -> None:
    names = Counter(source.stem for source in _sources())
    shared = {name for name, count in names.items() if count > 1}
    assert shared - {"__init__", "__main__", "conftest"} == set()
