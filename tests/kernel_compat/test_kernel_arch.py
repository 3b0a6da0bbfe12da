"""Architecture tables: syscall numbers and struct pt_regs offsets."""

from __future__ import annotations

import platform

import pytest

from kernel_compat import FeatureMissing, load_vmlinux_btf
from kernel_compat.arch import PtRegs, pt_regs_layout, syscall_number


def test_vfork_number() -> None:
    assert syscall_number("vfork", "x86_64") == 58


def test_arm64_has_no_vfork() -> None:
    with pytest.raises(FeatureMissing, match="aarch64 has no vfork syscall"):
        syscall_number("vfork", "aarch64")


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
