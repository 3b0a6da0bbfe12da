"""Read-only facts about the running kernel, read from /proc, /sys and tracefs.

Grouped by job: the tracing facts a tracer asks first (tracefs, kprobes, kallsyms, pmu) at the
top; system/ (release, config, capabilities, sysctls, CPUs, cgroups, mounts, this process);
btf/ (the kernel's type information); arch/ (per-architecture tables: syscall numbers and
symbols, struct pt_regs).

Every reader takes `root` (default "/") so tests can point it at a directory laid out
like the real one. Readers raise FeatureMissing when the kernel lacks what was asked
for, and KernelFactError when a fact exists but cannot be read or understood.
"""

from __future__ import annotations

from .arch import SyscallTable, syscall_number, syscall_table
from .btf import Btf, BtfKind, Member, load_vmlinux_btf, vmlinux_btf_path
from .fact_errors import FeatureMissing, KernelFactError
from .kallsyms import syscall_symbol, syscall_symbol_candidates
from .pmu import PmuFormatField, list_pmus, pmu_format_bit, pmu_format_field, pmu_type
from .system import (
    Capability,
    KernelConfig,
    KernelRelease,
    boot_id,
    capability_name,
    effective_capabilities,
    kernel_config,
    kernel_release,
    lockdown,
    memlock_limit,
    online_cpus,
    perf_event_paranoid,
    possible_cpus,
    resident_kib,
    unprivileged_bpf_disabled,
)
from .tracefs import (
    TRACEFS_MOUNTPOINTS,
    TracepointField,
    TracepointFormat,
    find_tracefs,
    read_tracepoint_format,
    tracepoint_id,
)

__all__ = [
    "TRACEFS_MOUNTPOINTS",
    "Btf",
    "BtfKind",
    "Capability",
    "FeatureMissing",
    "KernelConfig",
    "KernelFactError",
    "KernelRelease",
    "Member",
    "PmuFormatField",
    "SyscallTable",
    "TracepointField",
    "TracepointFormat",
    "boot_id",
    "capability_name",
    "effective_capabilities",
    "find_tracefs",
    "kernel_config",
    "kernel_release",
    "list_pmus",
    "load_vmlinux_btf",
    "lockdown",
    "memlock_limit",
    "online_cpus",
    "perf_event_paranoid",
    "pmu_format_bit",
    "pmu_format_field",
    "pmu_type",
    "possible_cpus",
    "read_tracepoint_format",
    "resident_kib",
    "syscall_number",
    "syscall_symbol",
    "syscall_symbol_candidates",
    "syscall_table",
    "tracepoint_id",
    "unprivileged_bpf_disabled",
    "vmlinux_btf_path",
]
