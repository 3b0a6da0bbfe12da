"""Facts fixed by the CPU architecture, compiled into the kernel and not readable from /proc or
/sys: syscall numbers and where struct pt_regs keeps the values a probe reads."""

from __future__ import annotations

from .pt_regs import PtRegs, exits_seen_as, pt_regs_layout, syscall_number

__all__ = ["PtRegs", "exits_seen_as", "pt_regs_layout", "syscall_number"]
