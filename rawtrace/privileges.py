"""Checking, before anything is loaded, that this process may trace at all."""

from __future__ import annotations

from kernel_compat import Capability, capability_name, effective_capabilities
from rawtrace.errors import PermissionMissing

# Since 5.8 CAP_BPF plus CAP_PERFMON suffice; CAP_SYS_ADMIN alone still covers both everywhere.
_NEEDED = (Capability.BPF, Capability.PERFMON)


def require_tracing_capabilities() -> None:
    """Raise PermissionMissing naming the missing capabilities."""
    caps = effective_capabilities()
    if Capability.SYS_ADMIN in caps:
        return
    missing = [cap for cap in _NEEDED if cap not in caps]
    if missing:
        names = " and ".join(capability_name(cap) for cap in missing)
        raise PermissionMissing(
            f"tracing needs {names} (or CAP_SYS_ADMIN), which this process lacks",
            "run it as root: sudo rawtrace ...",
        )
