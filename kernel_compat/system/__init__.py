"""Facts about the system the tracer runs on: release and config, capabilities and sysctls,
CPUs, cgroups and mounts, and this process's own limits."""

from __future__ import annotations

from .capabilities import Capability, capability_name, effective_capabilities
from .config import KernelConfig, kernel_config
from .cpus import online_cpus, possible_cpus
from .process import memlock_limit, resident_kib
from .release import KernelRelease, boot_id, kernel_release
from .sysctl import lockdown, perf_event_paranoid, unprivileged_bpf_disabled

__all__ = [
    "Capability",
    "KernelConfig",
    "KernelRelease",
    "boot_id",
    "capability_name",
    "effective_capabilities",
    "kernel_config",
    "kernel_release",
    "lockdown",
    "memlock_limit",
    "online_cpus",
    "perf_event_paranoid",
    "possible_cpus",
    "resident_kib",
    "unprivileged_bpf_disabled",
]
