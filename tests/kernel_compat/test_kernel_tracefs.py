from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from kernel_compat import (
    TRACEFS_MOUNTPOINTS,
    FeatureMissing,
    KernelFactError,
    TracepointField,
    find_tracefs,
    read_tracepoint_format,
    tracepoint_id,
)
from kernel_compat.system.mounts import _parse_mounts
from kernel_compat.tracefs import _parse_format, _tracefs_candidates

if TYPE_CHECKING:
    from conftest import FakeRoot

SYS_EXIT_VFORK = (
    "name: sys_exit_vfork\n"
    "ID: 197\n"
    "format:\n"
    "\tfield:unsigned short common_type;\toffset:0;\tsize:2;\tsigned:0;\n"
    "\tfield:unsigned char common_flags;\toffset:2;\tsize:1;\tsigned:0;\n"
    "\tfield:unsigned char common_preempt_count;\toffset:3;\tsize:1;\tsigned:0;\n"
    "\tfield:int common_pid;\toffset:4;\tsize:4;\tsigned:1;\n"
    "\n"
    "\tfield:int __syscall_nr;\toffset:8;\tsize:4;\tsigned:1;\n"
    "\tfield:long ret;\toffset:16;\tsize:8;\tsigned:1;\n"
    "\n"
    'print fmt: "0x%lx", REC->ret\n'
)

SCHED_SWITCH_AND_FRIENDS = (
    "name: mixed\n"
    "ID: 372\n"
    "format:\n"
    "\tfield:unsigned short common_type;\toffset:0;\tsize:2;\tsigned:0;\n"
    "\n"
    "\tfield:char prev_comm[16];\toffset:8;\tsize:16;\tsigned:0;\n"
    "\tfield:__data_loc char[] filename;\toffset:24;\tsize:4;\tsigned:0;\n"
    "\tfield:const char * pathname;\toffset:32;\tsize:8;\tsigned:0;\n"
    "\tfield:char *name;\toffset:40;\tsize:8;\tsigned:0;\n"
    "\tfield:unsigned long args[6];\toffset:48;\tsize:48;\tsigned:0;\n"
    "\n"
    'print fmt: "field:int bogus;\toffset:1;\tsize:1;", REC->prev_comm\n'
)

# Kernels before 2.6.32 had no "signed:" attribute.
OLD_KERNEL = (
    "name: sys_enter_open\n"
    "ID: 21\n"
    "format:\n"
    "\tfield:unsigned short common_type;\toffset:0;\tsize:2;\n"
    "\tfield:int nr;\toffset:8;\tsize:4;\n"
    "\n"
    'print fmt: "%d", REC->nr\n'
)

MOUNTS = (
    "sysfs /sys sysfs rw,nosuid,nodev,noexec,relatime 0 0\n"
    "proc /proc proc rw,nosuid,nodev,noexec,relatime 0 0\n"
    "debugfs /sys/kernel/debug debugfs rw,nosuid,nodev,noexec,relatime 0 0\n"
    "tracefs /sys/kernel/tracing tracefs rw,relatime 0 0\n"
)


def test_parse_format_real_sys_exit_vfork() -> None:
    fmt = _parse_format(SYS_EXIT_VFORK, "syscalls")
    assert (fmt.category, fmt.name, fmt.id) == ("syscalls", "sys_exit_vfork", 197)
    assert list(fmt.fields) == [
        "common_type",
        "common_flags",
        "common_preempt_count",
        "common_pid",
        "__syscall_nr",
        "ret",
    ]
    assert fmt.field("ret") == TracepointField("ret", 16, 8, True, "long")
    assert fmt.field("common_type") == TracepointField("common_type", 0, 2, False, "unsigned short")
    assert fmt.field("__syscall_nr") == TracepointField("__syscall_nr", 8, 4, True, "int")


def test_parse_format_arrays_data_loc_and_pointers() -> None:
    fmt = _parse_format(SCHED_SWITCH_AND_FRIENDS)
    assert fmt.category == ""
    assert fmt.field("prev_comm") == TracepointField("prev_comm", 8, 16, False, "char[16]")
    assert fmt.field("filename") == TracepointField("filename", 24, 4, False, "__data_loc char[]")
    assert fmt.field("pathname") == TracepointField("pathname", 32, 8, False, "const char *")
    assert fmt.field("name") == TracepointField("name", 40, 8, False, "char *")
    assert fmt.field("args") == TracepointField("args", 48, 48, False, "unsigned long[6]")
    # The "field:" text inside print fmt is not a field.
    assert "bogus" not in fmt.fields


def test_parse_format_without_signed_attribute() -> None:
    fmt = _parse_format(OLD_KERNEL, "syscalls")
    assert fmt.field("nr") == TracepointField("nr", 8, 4, False, "int")
    assert fmt.id == 21


def test_field_missing_names_tracepoint_and_field() -> None:
    fmt = _parse_format(SYS_EXIT_VFORK, "syscalls")
    with pytest.raises(KernelFactError, match=r"syscalls:sys_exit_vfork has no field 'nope'"):
        fmt.field("nope")


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("ID: 1\nformat:\n", "no 'name:' line"),
        ("name: x\nformat:\n", "no 'ID:' line"),
        ("name: x\nID: one\n", "bad ID line"),
        ("name: x\nID: 1\n\tfield:int a;\toffset:x;\tsize:4;\n", "bad field line"),
        ("name: x\nID: 1\n\tfield:int;\toffset:0;\tsize:4;\n", "cannot find the field name"),
    ],
)
def test_parse_format_rejects_malformed(text: str, problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        _parse_format(text)


def test_parse_mounts_unescapes_octal() -> None:
    text = "tracefs /mnt/my\\040trace tracefs rw 0 0\nshort line\n"
    assert _parse_mounts(text) == [("/mnt/my trace", "tracefs")]


def test_candidates_prefer_standard_locations() -> None:
    mounts = [
        ("/elsewhere", "tracefs"),
        ("/sys/kernel/debug", "debugfs"),
        ("/sys/kernel/tracing", "tracefs"),
    ]
    assert _tracefs_candidates(mounts) == [
        ("/sys/kernel/tracing", False),
        ("/sys/kernel/debug/tracing", True),
        ("/elsewhere", False),
    ]


def test_candidates_tracefs_mount_beats_debugfs_guess() -> None:
    mounts = [("/sys/kernel/debug", "debugfs"), ("/sys/kernel/debug/tracing", "tracefs")]
    assert _tracefs_candidates(mounts) == [("/sys/kernel/debug/tracing", False)]


def test_find_tracefs_prefers_sys_kernel_tracing(fake_root: FakeRoot) -> None:
    fake_root.write("/proc/self/mounts", MOUNTS)
    assert find_tracefs(fake_root.path) == fake_root.path / "sys/kernel/tracing"


def test_find_tracefs_falls_back_to_debugfs(fake_root: FakeRoot) -> None:
    fake_root.write("/proc/self/mounts", "debugfs /sys/kernel/debug debugfs rw 0 0\n")
    fake_root.mkdir("/sys/kernel/debug/tracing")
    assert find_tracefs(str(fake_root.path)) == fake_root.path / "sys/kernel/debug/tracing"


def test_find_tracefs_debugfs_without_tracing_dir(fake_root: FakeRoot) -> None:
    fake_root.write("/proc/self/mounts", "debugfs /sys/kernel/debug debugfs rw 0 0\n")
    with pytest.raises(FeatureMissing) as info:
        find_tracefs(fake_root.path)
    assert str(info.value).startswith(
        "tracefs is not mounted at /sys/kernel/tracing or /sys/kernel/debug/tracing"
    )


def test_find_tracefs_not_mounted(fake_root: FakeRoot) -> None:
    fake_root.write("/proc/self/mounts", "proc /proc proc rw 0 0\n")
    with pytest.raises(FeatureMissing, match="tracefs is not mounted at /sys/kernel/tracing"):
        find_tracefs(fake_root.path)


def test_find_tracefs_without_mounts_file(fake_root: FakeRoot) -> None:
    with pytest.raises(FeatureMissing, match="proc/self/mounts does not exist"):
        find_tracefs(fake_root.path)


def test_mountpoints_constant() -> None:
    assert TRACEFS_MOUNTPOINTS == ("/sys/kernel/tracing", "/sys/kernel/debug/tracing")


def test_read_tracepoint_format_and_id(fake_root: FakeRoot) -> None:
    fake_root.write("/sys/kernel/tracing/events/syscalls/sys_exit_vfork/format", SYS_EXIT_VFORK)
    tracefs = fake_root.path / "sys/kernel/tracing"
    fmt = read_tracepoint_format(tracefs, "syscalls", "sys_exit_vfork")
    assert (fmt.category, fmt.name, fmt.id) == ("syscalls", "sys_exit_vfork", 197)
    assert tracepoint_id(tracefs, "syscalls", "sys_exit_vfork") == 197


def test_read_tracepoint_format_missing(fake_root: FakeRoot) -> None:
    tracefs = fake_root.mkdir("/sys/kernel/tracing")
    with pytest.raises(FeatureMissing) as info:
        read_tracepoint_format(tracefs, "syscalls", "sys_exit_vfork")
    assert str(info.value) == (
        f"tracepoint syscalls:sys_exit_vfork does not exist in"
        f" {tracefs / 'events/syscalls/sys_exit_vfork'}"
    )


def test_read_tracepoint_format_malformed(fake_root: FakeRoot) -> None:
    path = fake_root.write("/t/events/a/b/format", "garbage\n")
    with pytest.raises(KernelFactError, match=f"cannot parse {path}: no 'name:' line") as info:
        read_tracepoint_format(fake_root.path / "t", "a", "b")
    assert isinstance(info.value.__cause__, ValueError)


@pytest.mark.parametrize(("category", "name"), [("..", "x"), ("a/b", "x"), ("a", ""), ("a", ".")])
def test_read_tracepoint_format_refuses_path_tricks(
    tmp_path: Path, category: str, name: str
) -> None:
    with pytest.raises(ValueError, match="invalid tracepoint name component"):
        read_tracepoint_format(tmp_path, category, name)


def test_real_machine_tracefs() -> None:
    try:
        tracefs = find_tracefs()
    except FeatureMissing as exc:
        pytest.skip(f"tracefs not mounted on this machine: {exc}")
    assert str(tracefs) in TRACEFS_MOUNTPOINTS or os.path.ismount(tracefs)
    try:
        fmt = read_tracepoint_format(tracefs, "syscalls", "sys_exit_vfork")
    except FeatureMissing as exc:
        pytest.skip(f"no syscall tracepoints (CONFIG_FTRACE_SYSCALLS off?): {exc}")
    id_file = tracefs / "events/syscalls/sys_exit_vfork/id"
    assert fmt.id == int(id_file.read_text())
    assert fmt.field("common_type") == TracepointField("common_type", 0, 2, False, "unsigned short")
    assert fmt.field("ret") == TracepointField("ret", 16, 8, True, "long")
