"""Architecture tables: syscall numbers and struct pt_regs offsets."""

from __future__ import annotations

import pytest

from kernel_compat import FeatureMissing
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
    assert pt_regs_layout("x86_64") == PtRegs(return_value=80, syscall_nr=120, syscall_nr_size=8)
    assert pt_regs_layout("aarch64").return_value == 0
