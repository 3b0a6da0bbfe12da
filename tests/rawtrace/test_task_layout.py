"""The task layout from BTF, and its per-boot cache."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from kernel_compat import FeatureMissing, boot_id, vmlinux_btf_path
from rawtrace.kernel.task_layout import task_layout


@pytest.fixture(autouse=True)
def _needs_btf() -> None:
    try:
        vmlinux_btf_path()
    except FeatureMissing:
        pytest.skip("this kernel has no BTF")


def test_cached_layout_is_the_same_and_keyed_by_boot(tmp_path: Path) -> None:
    cache = tmp_path / "rawtrace" / "task-layout.json"
    fresh = task_layout(cache)
    assert fresh is not None
    assert json.loads(cache.read_text())["boot_id"] == boot_id()
    assert task_layout(cache) == fresh


def test_a_cache_from_another_boot_or_garbage_is_ignored(tmp_path: Path) -> None:
    cache = tmp_path / "task-layout.json"
    fresh = task_layout(cache)
    assert fresh is not None
    saved = json.loads(cache.read_text())
    saved["boot_id"] = "another boot"
    saved["layout"]["task_tgid"] = 1
    cache.write_text(json.dumps(saved))
    assert task_layout(cache) == fresh
    cache.write_text("{not json")
    assert task_layout(cache) == fresh
