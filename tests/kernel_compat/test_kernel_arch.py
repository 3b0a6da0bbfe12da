"""Architecture tables: one syscall table per architecture, and struct pt_regs offsets."""

from __future__ import annotations

import platform

import pytest

from kernel_compat import FeatureMissing, load_vmlinux_btf
from kernel_compat.arch import (
    TABLES,
    PtRegs,
    exits_seen_as,
    pt_regs_layout,
    syscall_number,
    syscall_table,
)


def test_vfork_number() -> None:
    assert syscall_number("vfork", "x86_64") == 58


def test_arm64_has_no_vfork() -> None:
    with pytest.raises(FeatureMissing, match="aarch64 has no vfork syscall"):
        syscall_number("vfork", "aarch64")


def test_arm64_vfork_is_compat_only() -> None:
    table = syscall_table("aarch64")
    assert table.compat_only_symbols == {"__arm64_sys_fork", "__arm64_sys_vfork"}
    with pytest.raises(FeatureMissing, match="serves only 32-bit compat tasks"):
        table.number("fork")
    assert syscall_table("arm64") is table


def test_every_table_holds_the_numbers_rawtrace_calls() -> None:
    for machine, table in TABLES.items():
        assert table.machine == machine
        assert {"bpf", "perf_event_open"} <= set(table.numbers), machine


def test_traced_syscalls_on_the_tested_architectures() -> None:
    traced = {"clone", "clone3", "execve", "execveat", "exit", "exit_group", "fork", "vfork"}
    # and those declarations may name (rawtrace.syscall_event): kill, openat
    traced |= {"kill", "openat"}
    for machine in ("x86_64", "aarch64", "riscv64"):
        table = TABLES[machine]
        assert traced == set(table.numbers) - {"bpf", "perf_event_open"} | table.absent, machine
    assert syscall_number("bpf", "x86_64") == 321
    assert syscall_number("perf_event_open", "x86_64") == 298
    assert syscall_number("bpf", "aarch64") == syscall_number("bpf", "riscv64") == 280
    assert syscall_number("perf_event_open", "aarch64") == 241
    assert (syscall_number("kill", "x86_64"), syscall_number("kill", "aarch64")) == (62, 129)
    assert (syscall_number("openat", "x86_64"), syscall_number("openat", "riscv64")) == (257, 56)


def test_exits_seen_as() -> None:
    assert exits_seen_as("execveat", "x86_64") == ("execve",)
    assert exits_seen_as("execveat", "aarch64") == ()
    assert exits_seen_as("vfork", "x86_64") == ()


def test_unknown_arch() -> None:
    with pytest.raises(FeatureMissing, match="mips"):
        syscall_number("vfork", "mips")
    with pytest.raises(FeatureMissing, match="mips"):
        pt_regs_layout("mips")


def test_pt_regs() -> None:
    # x86_64: ax is the 11th and orig_ax the 16th u64 of struct pt_regs (as BTF says).
    x86 = pt_regs_layout("x86_64")
    assert (x86.return_value, x86.syscall_nr, x86.syscall_nr_size) == (80, 120, 8)
    # function arguments: di, si, dx, cx, r8, r9; syscall arguments take r10 for cx
    assert x86.call_args == (112, 104, 96, 88, 72, 64)
    assert x86.syscall_args == (112, 104, 96, 56, 72, 64)
    assert isinstance(x86, PtRegs)
    assert pt_regs_layout("aarch64").return_value == 0


def test_lifecycle_numbers() -> None:
    numbers = {name: syscall_number(name, "x86_64") for name in ("clone", "fork", "execve")}
    assert numbers == {"clone": 56, "fork": 57, "execve": 59}
    assert syscall_number("exit_group", "x86_64") == 231
    assert (syscall_number("execveat", "x86_64"), syscall_number("clone3", "x86_64")) == (322, 435)
    assert syscall_number("execve", "aarch64") == 221


def test_pt_regs_agrees_with_this_kernels_btf() -> None:
    if platform.machine() != "x86_64":
        pytest.skip("the BTF names below are x86_64's registers")
    try:
        btf = load_vmlinux_btf()
    except FeatureMissing as exc:
        pytest.skip(f"no BTF: {exc}")
    regs = pt_regs_layout()
    offset = {name: btf.field("pt_regs", name).offset for name in ("ax", "orig_ax")}
    assert (regs.return_value, regs.syscall_nr) == (offset["ax"], offset["orig_ax"])
    calls = tuple(btf.field("pt_regs", r).offset for r in ("di", "si", "dx", "cx", "r8", "r9"))
    syscalls = tuple(btf.field("pt_regs", r).offset for r in ("di", "si", "dx", "r10", "r8", "r9"))
    assert (regs.call_args, regs.syscall_args) == (calls, syscalls)
