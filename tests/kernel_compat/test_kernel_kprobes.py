"""kprobe_events and kprobe_profile, parsed from fixture text in the kernel's own formats."""

from __future__ import annotations

from pathlib import Path

import pytest

from kernel_compat import FeatureMissing, KernelFactError
from kernel_compat.kprobes import (
    KprobeDefinition,
    ProbeCounts,
    read_kprobe_events,
    read_kprobe_profile,
)

# probes_seq_show(): maxactive appears only when it was given.
EVENTS = """\
p:kprobes/rawtrace_4242_0___x64_sys_vfork __x64_sys_vfork
r4096:kprobes/rawtrace_4242_1___x64_sys_vfork __x64_sys_vfork
r:mygroup/ret_open do_sys_openat2 ret=$retval
p:kprobes/p_vfs_read_0 vfs_read+4 arg1=%di
"""
# probes_profile_seq_show(): "  %-44s %15lu %15lu".
PROFILE = (
    f"  {'rawtrace_4242_0___x64_sys_vfork':<44} {12:>15} {0:>15}\n"
    f"  {'rawtrace_4242_1___x64_sys_vfork':<44} {12:>15} {3:>15}\n"
)


def test_kprobe_events(tmp_path: Path) -> None:
    (tmp_path / "kprobe_events").write_text(EVENTS)
    assert read_kprobe_events(tmp_path) == [
        KprobeDefinition("kprobes", "rawtrace_4242_0___x64_sys_vfork", False, "__x64_sys_vfork"),
        KprobeDefinition("kprobes", "rawtrace_4242_1___x64_sys_vfork", True, "__x64_sys_vfork"),
        KprobeDefinition("mygroup", "ret_open", True, "do_sys_openat2"),
        KprobeDefinition("kprobes", "p_vfs_read_0", False, "vfs_read+4"),
    ]


def test_kprobe_profile(tmp_path: Path) -> None:
    (tmp_path / "kprobe_profile").write_text(PROFILE)
    assert read_kprobe_profile(tmp_path) == {
        "rawtrace_4242_0___x64_sys_vfork": ProbeCounts(12, 0),
        "rawtrace_4242_1___x64_sys_vfork": ProbeCounts(12, 3),
    }


def test_empty_files(tmp_path: Path) -> None:
    (tmp_path / "kprobe_events").write_text("")
    (tmp_path / "kprobe_profile").write_text("")
    assert read_kprobe_events(tmp_path) == []
    assert read_kprobe_profile(tmp_path) == {}


def test_missing_files_mean_no_kprobe_events(tmp_path: Path) -> None:
    with pytest.raises(FeatureMissing, match="CONFIG_KPROBE_EVENTS"):
        read_kprobe_events(tmp_path)
    with pytest.raises(FeatureMissing, match="CONFIG_KPROBE_EVENTS"):
        read_kprobe_profile(tmp_path)


def test_garbage_is_a_fact_error(tmp_path: Path) -> None:
    (tmp_path / "kprobe_events").write_text("x:nonsense\n")
    (tmp_path / "kprobe_profile").write_text("  name 12\n")
    with pytest.raises(KernelFactError, match="bad line"):
        read_kprobe_events(tmp_path)
    with pytest.raises(KernelFactError, match="bad line"):
        read_kprobe_profile(tmp_path)
