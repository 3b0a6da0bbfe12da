"""The harness tests' place in a run: they boot guests, so only a run that asks for them
(no -m at all, as CI's `python3 -m pytest`, or an -m naming `vm`) runs them."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest

# The harness's modules are what run and matrix import from their own directory; this works
# whatever pytest's --import-mode.
sys.path.insert(0, str(Path(__file__).resolve().parent))


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    # `-m 'not live'` is the unit run and must boot no guest, yet the harness tests are not
    # live (they load no BPF program): a marker expression that leaves `vm` unnamed skips them.
    markexpr = config.getoption("markexpr")
    if not markexpr or re.search(r"\bvm\b", markexpr):
        return
    skip = pytest.mark.skip(reason="boots guests in QEMU; run with no -m, or with: -m vm")
    for item in items:
        if "vm" in item.keywords:
            item.add_marker(skip)
