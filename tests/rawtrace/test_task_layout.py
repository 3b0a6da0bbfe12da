"""The task layout from BTF, and its per-boot cache: trusted only where only we could write it.

Each test gives the cache a directory of its own (task_layout's `directory`)."""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path

import pytest

from kernel_compat import FeatureMissing, vmlinux_btf_path
from rawtrace.kernel.task_layout import TaskLayout, cache_key, task_layout, valid_layout

NAME = "task-layout.json"


@pytest.fixture(autouse=True)
def _needs_btf() -> None:
    try:
        vmlinux_btf_path()
    except FeatureMissing:
        pytest.skip("this kernel has no BTF")


@pytest.fixture
def cache(tmp_path: Path) -> Path:
    directory = tmp_path / "rawtrace"
    assert task_layout(directory) is not None  # made and saved
    return directory


def test_cached_layout_is_the_same_and_keyed_by_boot_btf_and_code(cache: Path) -> None:
    saved = json.loads((cache / NAME).read_text())
    assert saved["key"] == cache_key()
    assert task_layout(cache) == valid_layout(saved["layout"])
    assert cache.stat().st_mode & 0o777 == 0o755


def _fresh(cache: Path) -> TaskLayout:
    layout = task_layout(cache)
    assert layout is not None
    return layout


def _planted(cache: Path, change: dict[str, object]) -> Path:
    """The saved file with `change` applied, its layout made visibly wrong."""
    path = cache / NAME
    saved = json.loads(path.read_text())
    saved["layout"]["task_tgid"] += 4  # still aligned: only the key or the check tells
    saved.update(change)
    path.write_text(json.dumps(saved))
    return path


def test_a_cache_of_another_key_is_rebuilt(cache: Path) -> None:
    fresh = _fresh(cache)
    _planted(cache, {"key": "another boot/1/0"})
    assert task_layout(cache) == fresh
    assert json.loads((cache / NAME).read_text())["layout"]["task_tgid"] == fresh.task_tgid


@pytest.mark.parametrize(
    "layout",
    [
        {"task_tgid": "1"},
        {"task_tgid": -4},
        {"task_tgid": 1 << 20},
        {"task_tgid": 2},  # a u32 at an odd place
        {"task_real_parent": 12},  # a pointer off its alignment
        {"upid_size": 0},
        {"task_tgid": True},
        {"extra": 8},
    ],
)
def test_malformed_or_misaligned_offsets_are_rebuilt(
    cache: Path, layout: dict[str, object]
) -> None:
    fresh = _fresh(cache)
    path = cache / NAME
    saved = json.loads(path.read_text())
    saved["layout"].update(layout)
    path.write_text(json.dumps(saved))
    assert task_layout(cache) == fresh
    assert json.loads(path.read_text())["layout"] == json.loads(json.dumps(fresh.__dict__))


@pytest.mark.parametrize("text", ["{not json", "[]", '{"key": 1}', "\xff", "null"])
def test_garbage_is_rebuilt(cache: Path, text: str) -> None:
    fresh = _fresh(cache)
    (cache / NAME).write_text(text, errors="surrogateescape")
    assert task_layout(cache) == fresh


def test_a_directory_others_can_write_is_not_used(cache: Path) -> None:
    fresh = _fresh(cache)
    planted = _planted(cache, {})
    cache.chmod(0o777)
    assert task_layout(cache) == fresh  # from BTF: the planted file is not read
    assert planted.read_text() != ""  # nor replaced
    assert json.loads(planted.read_text())["layout"]["task_tgid"] == fresh.task_tgid + 4


def test_a_directory_of_another_owner_is_not_used(cache: Path) -> None:
    fresh = _fresh(cache)
    planted = _planted(cache, {})
    os.chown(cache, 65534, 65534)
    assert task_layout(cache) == fresh
    assert json.loads(planted.read_text())["layout"]["task_tgid"] == fresh.task_tgid + 4


def test_a_symlinked_directory_is_not_followed(tmp_path: Path, cache: Path) -> None:
    link = tmp_path / "link"
    link.symlink_to(cache)
    fresh = _fresh(cache)
    _planted(cache, {})
    assert task_layout(link) == fresh
    assert json.loads((cache / NAME).read_text())["layout"]["task_tgid"] == fresh.task_tgid + 4


def test_a_symlink_in_place_of_the_file_is_neither_read_nor_written_through(
    tmp_path: Path, cache: Path
) -> None:
    victim = tmp_path / "victim"
    victim.write_text("root's file")
    fresh = _fresh(cache)
    (cache / NAME).unlink()
    (cache / NAME).symlink_to(victim)
    assert task_layout(cache) == fresh
    assert victim.read_text() == "root's file"
    assert not (cache / NAME).is_symlink()  # replaced by a file of ours


def test_a_fifo_in_place_of_the_file_does_not_hang(cache: Path) -> None:
    fresh = _fresh(cache)
    (cache / NAME).unlink()
    os.mkfifo(cache / NAME)
    done: list[object] = []
    reader = threading.Thread(target=lambda: done.append(task_layout(cache)), daemon=True)
    reader.start()
    reader.join(timeout=30)
    assert done == [fresh]


def test_dev_zero_in_place_of_the_file_is_not_read(cache: Path) -> None:
    fresh = _fresh(cache)
    (cache / NAME).unlink()
    os.mknod(cache / NAME, 0o644 | 0o020000, os.makedev(1, 5))  # /dev/zero's numbers
    assert task_layout(cache) == fresh


def test_an_oversized_file_is_not_read(cache: Path) -> None:
    fresh = _fresh(cache)
    path = _planted(cache, {"padding": " " * 10_000})
    assert path.stat().st_size > 4096
    assert task_layout(cache) == fresh
