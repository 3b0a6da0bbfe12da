"""Facts fixed by the CPU architecture, compiled into the kernel and not readable from /proc or
/sys: one syscall table per architecture (syscall_tables) and where struct pt_regs keeps the
values a probe reads (pt_regs)."""

from __future__ import annotations

from .pt_regs import PtRegs, pt_regs_layout
from .syscall_tables import TABLES, SyscallTable, syscall_table

__all__ = [
    "TABLES",
    "PtRegs",
    "SyscallTable",
    "exits_seen_as",
    "pt_regs_layout",
    "syscall_number",
    "syscall_table",
]


def syscall_number(syscall: str, machine: str | None = None) -> int:
    """The number of `syscall` on `machine` (default: this one); FeatureMissing without one."""
    return syscall_table(machine).number(syscall)


def exits_seen_as(syscall: str, machine: str | None = None) -> tuple[str, ...]:
    """The other syscalls whose exit a successful `syscall` is reported as on `machine`."""
    return syscall_table(machine).exits_seen_as.get(syscall, ())
