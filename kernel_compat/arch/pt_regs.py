"""Where struct pt_regs keeps the values a probe reads, per architecture."""

from __future__ import annotations

import platform
from dataclasses import dataclass

from ..fact_errors import FeatureMissing

__all__ = ["PtRegs", "pt_regs_layout"]


@dataclass(frozen=True)
class PtRegs:
    """Byte offsets in struct pt_regs (arch/*/include/asm/ptrace.h)."""

    return_value: int  # PT_REGS_RC: where a function's return value is found at its return
    syscall_nr: int  # the syscall number as the entry code saved it
    syscall_nr_size: int  # 8, or 4 where the field is an int
    call_args: tuple[int, ...]  # a function's arguments at its entry (PT_REGS_PARM1...)
    syscall_args: tuple[int, ...]  # a syscall's arguments in the user's regs at its entry


_PT_REGS = {
    # r15 ... ax at 10 * 8, orig_ax at 15 * 8.
    # Arguments: di 112, si 104, dx 96, cx 88, r8 72, r9 64; syscalls take r10 (56) for cx,
    # which the syscall instruction overwrites.
    "x86_64": PtRegs(
        return_value=80,
        syscall_nr=120,
        syscall_nr_size=8,
        call_args=(112, 104, 96, 88, 72, 64),
        syscall_args=(112, 104, 96, 56, 72, 64),
    ),
    # regs[31], sp, pc, pstate, orig_x0, then `s32 syscallno` at 35 * 8. Arguments: x0-x5.
    "aarch64": PtRegs(
        return_value=0,
        syscall_nr=280,
        syscall_nr_size=4,
        call_args=(0, 8, 16, 24, 32, 40),
        syscall_args=(0, 8, 16, 24, 32, 40),
    ),
}


def pt_regs_layout(machine: str | None = None) -> PtRegs:
    """Return where struct pt_regs keeps the return value and syscall number on `machine`."""
    arch = platform.machine() if machine is None else machine
    try:
        return _PT_REGS[arch]
    except KeyError:
        raise FeatureMissing(f"rawtrace does not know struct pt_regs on {arch}") from None
