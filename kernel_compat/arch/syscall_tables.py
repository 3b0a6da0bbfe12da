"""One table per architecture of what rawtrace needs to know about its syscalls: the numbers it
calls (bpf, perf_event_open) or traces, and how the kernel names the functions behind them.
Every other syscall fact in rawtrace derives from these tables.

Numbers: arch/x86/entry/syscalls/syscall_64.tbl, include/uapi/asm-generic/unistd.h (the generic
table of arm64 and riscv), arch/s390/kernel/syscalls/syscall.tbl,
arch/powerpc/kernel/syscalls/syscall.tbl. Tracee's event ids are the x86_64 numbers.

Symbols: since Linux 4.17 (commit fa697140f9a2, "syscalls/x86: Use 'struct pt_regs' based
syscall calling convention for 64-bit syscalls"), architectures with
CONFIG_ARCH_HAS_SYSCALL_WRAPPER name a syscall's entry point with their own prefix
(`__x64_sys_vfork`), the same table as libbpf's arch_specific_syscall_pfx(); older kernels and
unwrapped architectures use the plain name, then the sign-extending wrapper.
"""

from __future__ import annotations

import platform
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from ..fact_errors import FeatureMissing

__all__ = ["GENERIC_PREFIXES", "TABLES", "SyscallTable", "syscall_table"]

GENERIC_PREFIXES = ("sys_", "__se_sys_")


@dataclass(frozen=True)
class SyscallTable:
    """One architecture's syscall facts.

    `absent`: syscalls the architecture does not offer its native tasks (the generic table
    has no fork or vfork: there the C library's vfork() is clone(CLONE_VM | CLONE_VFORK)).
    `compat_only`: those of `absent` whose function still exists, for 32-bit compat tasks only
    (arm64 builds `__arm64_sys_vfork` for AArch32 tasks): a probe on it never sees a 64-bit
    task, so its symbol is never offered.
    `exits_seen_as`: a successful call whose exit the syscall tracepoints report under another
    syscall's number.
    `done_by`: for a syscall of `absent`, the calls the C library makes instead (glibc's
    vfork() and posix_spawn call clone or clone3 with CLONE_VM | CLONE_VFORK, its fork()
    clone); which of their calls count is the event's to say.
    """

    machine: str
    numbers: Mapping[str, int]
    symbol_prefix: str = ""  # "" where the architecture has no syscall wrapper
    absent: frozenset[str] = frozenset()
    compat_only: frozenset[str] = frozenset()
    exits_seen_as: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    done_by: Mapping[str, tuple[str, ...]] = field(default_factory=dict)

    def number(self, syscall: str) -> int:
        """The number of `syscall`; FeatureMissing where the architecture has none."""
        try:
            return self.numbers[syscall]
        except KeyError:
            pass
        if syscall in self.absent:
            raise FeatureMissing(f"{self.machine} has no {syscall} syscall{self._compat(syscall)}")
        raise FeatureMissing(f"rawtrace does not know the number of {syscall} on {self.machine}")

    def symbol_candidates(self, syscall: str) -> tuple[str, ...]:
        """The kernel symbols that may implement `syscall`, most likely first; none for a
        syscall the architecture's native tasks cannot make."""
        if syscall in self.absent:
            return ()
        prefixes = (
            (self.symbol_prefix, *GENERIC_PREFIXES) if self.symbol_prefix else GENERIC_PREFIXES
        )
        return tuple(prefix + syscall for prefix in prefixes)

    def is_wrapper(self, symbol: str) -> bool:
        """Whether `symbol` is an arch syscall wrapper (4.17+), which takes the user's struct
        pt_regs as its one argument instead of the syscall's arguments."""
        return bool(self.symbol_prefix) and symbol.startswith(self.symbol_prefix)

    @property
    def compat_only_symbols(self) -> frozenset[str]:
        """The symbols that exist only for 32-bit compat tasks: never to be probed."""
        return frozenset(self.symbol_prefix + syscall for syscall in self.compat_only)

    def absent_reason(self, syscall: str) -> str:
        """Why `syscall` has no symbol to probe here ("" when it may have one)."""
        if syscall not in self.absent:
            return ""
        return f"{self.machine} has no {syscall} syscall{self._compat(syscall)}"

    def _compat(self, syscall: str) -> str:
        if syscall not in self.compat_only:
            return ""
        return f" ({self.symbol_prefix}{syscall} serves only 32-bit compat tasks)"


# asm-generic/unistd.h: no fork, no vfork.
_GENERIC_NUMBERS = {
    "openat": 56,
    "exit": 93,
    "kill": 129,
    "exit_group": 94,
    "clone": 220,
    "execve": 221,
    "perf_event_open": 241,
    "bpf": 280,
    "execveat": 281,
    "clone3": 435,
}
_GENERIC_ABSENT = frozenset({"fork", "vfork"})
_GENERIC_DONE_BY = MappingProxyType({"fork": ("clone",), "vfork": ("clone", "clone3")})

TABLES: Mapping[str, SyscallTable] = MappingProxyType(
    {
        "x86_64": SyscallTable(
            "x86_64",
            MappingProxyType(
                {
                    "clone": 56,
                    "fork": 57,
                    "vfork": 58,
                    "execve": 59,
                    "exit": 60,
                    "kill": 62,
                    "openat": 257,
                    "exit_group": 231,
                    "perf_event_open": 298,
                    "bpf": 321,
                    "execveat": 322,
                    "clone3": 435,
                }
            ),
            symbol_prefix="__x64_sys_",
            # A successful execveat returns into the new program with orig_ax holding execve's
            # number, so the syscall exit tracepoints (and raw sys_exit) report it as execve's
            # exit: seen with tracefs, `sys_execveat(...)` then `sys_execve -> 0x0`.
            exits_seen_as=MappingProxyType({"execveat": ("execve",)}),
        ),
        "aarch64": SyscallTable(
            "aarch64",
            MappingProxyType(_GENERIC_NUMBERS),
            symbol_prefix="__arm64_sys_",
            absent=_GENERIC_ABSENT,
            # arch/arm64/include/asm/unistd.h wants sys_fork and sys_vfork under CONFIG_COMPAT,
            # for the AArch32 table (unistd32.h) alone.
            compat_only=_GENERIC_ABSENT,
            done_by=_GENERIC_DONE_BY,
        ),
        "riscv64": SyscallTable(
            "riscv64",
            MappingProxyType(_GENERIC_NUMBERS),
            symbol_prefix="__riscv_sys_",
            absent=_GENERIC_ABSENT,
            done_by=_GENERIC_DONE_BY,
        ),
        # Only the numbers rawtrace calls are known here; tracing on these is untested.
        "s390x": SyscallTable(
            "s390x",
            MappingProxyType({"perf_event_open": 331, "bpf": 351}),
            symbol_prefix="__s390x_sys_",
        ),
        "ppc64le": SyscallTable("ppc64le", MappingProxyType({"perf_event_open": 319, "bpf": 361})),
    }
)


def syscall_table(machine: str | None = None) -> SyscallTable:
    """The table of `machine` (default: this one; "arm64" is aarch64's other name); one with
    no numbers and no prefix for an architecture rawtrace does not know."""
    arch = platform.machine() if machine is None else machine
    arch = "aarch64" if arch == "arm64" else arch
    return TABLES.get(arch) or SyscallTable(arch, MappingProxyType({}))
