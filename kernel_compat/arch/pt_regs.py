"""Facts fixed by the CPU architecture: syscall numbers and where struct pt_regs keeps the
values a probe reads. They are compiled into the kernel and not readable from /proc or /sys."""

from __future__ import annotations

import platform
from dataclasses import dataclass

from ..fact_errors import FeatureMissing

__all__ = ["PtRegs", "exits_seen_as", "pt_regs_layout", "syscall_number"]

# Only the syscalls rawtrace traces (arch/x86/entry/syscalls/syscall_64.tbl,
# include/uapi/asm-generic/unistd.h). The generic table, used by arm64 and riscv, has no vfork
# at all: there the C library's vfork() is clone(CLONE_VM | CLONE_VFORK).
_GENERIC = {
    "exit": 93,
    "exit_group": 94,
    "clone": 220,
    "execve": 221,
    "execveat": 281,
    "clone3": 435,
}
_SYSCALL_NUMBERS: dict[str, dict[str, int]] = {
    "x86_64": {
        "clone": 56,
        "fork": 57,
        "vfork": 58,
        "execve": 59,
        "exit": 60,
        "exit_group": 231,
        "execveat": 322,
        "clone3": 435,
    },
    "aarch64": _GENERIC,
    "riscv64": _GENERIC,
}


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


def syscall_number(syscall: str, machine: str | None = None) -> int:
    """Return the number of `syscall` on `machine` (default: this one)."""
    arch = platform.machine() if machine is None else machine
    try:
        return _SYSCALL_NUMBERS[arch][syscall]
    except KeyError:
        if arch in _SYSCALL_NUMBERS:
            raise FeatureMissing(f"{arch} has no {syscall} syscall") from None
        raise FeatureMissing(f"rawtrace does not know the syscall numbers of {arch}") from None


# A successful execveat on x86_64 returns into the new program with orig_ax holding execve's
# number, so the syscall exit tracepoints (and raw sys_exit) report it as execve's exit: seen
# with tracefs, `sys_execveat(...)` then `sys_execve -> 0x0` from the same task.
_EXITS_SEEN_AS = {"x86_64": {"execveat": ("execve",)}}


def exits_seen_as(syscall: str, machine: str | None = None) -> tuple[str, ...]:
    """The other syscalls whose exit a successful `syscall` is reported as on `machine`."""
    arch = platform.machine() if machine is None else machine
    return _EXITS_SEEN_AS.get(arch, {}).get(syscall, ())


def pt_regs_layout(machine: str | None = None) -> PtRegs:
    """Return where struct pt_regs keeps the return value and syscall number on `machine`."""
    arch = platform.machine() if machine is None else machine
    try:
        return _PT_REGS[arch]
    except KeyError:
        raise FeatureMissing(f"rawtrace does not know struct pt_regs on {arch}") from None
