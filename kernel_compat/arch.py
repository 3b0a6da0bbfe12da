"""Facts fixed by the CPU architecture: syscall numbers and where struct pt_regs keeps the
values a probe reads. They are compiled into the kernel and not readable from /proc or /sys."""

from __future__ import annotations

import platform
from dataclasses import dataclass

from .errors import FeatureMissing

__all__ = ["PtRegs", "pt_regs_layout", "syscall_number"]

# Only the syscalls rawtrace traces (arch/x86/entry/syscalls/syscall_64.tbl,
# include/uapi/asm-generic/unistd.h). The generic table, used by arm64 and riscv, has no vfork
# at all: there the C library's vfork() is clone(CLONE_VM | CLONE_VFORK).
_SYSCALL_NUMBERS: dict[str, dict[str, int]] = {
    "x86_64": {"vfork": 58},
    "aarch64": {},
    "riscv64": {},
}


@dataclass(frozen=True)
class PtRegs:
    """Byte offsets in struct pt_regs (arch/*/include/asm/ptrace.h)."""

    return_value: int  # PT_REGS_RC: where a function's return value is found at its return
    syscall_nr: int  # the syscall number as the entry code saved it
    syscall_nr_size: int  # 8, or 4 where the field is an int


_PT_REGS = {
    # r15 ... ax at 10 * 8, orig_ax at 15 * 8.
    "x86_64": PtRegs(return_value=80, syscall_nr=120, syscall_nr_size=8),
    # regs[31], sp, pc, pstate, orig_x0, then `s32 syscallno` at 35 * 8.
    "aarch64": PtRegs(return_value=0, syscall_nr=280, syscall_nr_size=4),
}


def syscall_number(syscall: str, machine: str | None = None) -> int:
    """Return the number of `syscall` on `machine` (default: this one)."""
    arch = platform.machine() if machine is None else machine
    try:
        return _SYSCALL_NUMBERS[arch][syscall]
    except KeyError:
        if arch in _SYSCALL_NUMBERS:
            raise FeatureMissing(f"{arch} has no {syscall} syscall") from None
        raise FeatureMissing(f"rawtrace does not know the syscall numbers of {arch}") from None


def pt_regs_layout(machine: str | None = None) -> PtRegs:
    """Return where struct pt_regs keeps the return value and syscall number on `machine`."""
    arch = platform.machine() if machine is None else machine
    try:
        return _PT_REGS[arch]
    except KeyError:
        raise FeatureMissing(f"rawtrace does not know struct pt_regs on {arch}") from None
