"""Making tracefs available: find it, and mount it where it is absent and we may."""

from __future__ import annotations

from pathlib import Path

from kernel_compat import TRACEFS_MOUNTPOINTS, FeatureMissing, find_tracefs
from rawtrace.errors import KernelFeatureMissing
from rawtrace.kernel.ffi import mount


def ensure_tracefs() -> Path:
    """The tracefs directory, mounted at /sys/kernel/tracing first if no tracefs is mounted."""
    try:
        return find_tracefs()
    except FeatureMissing:
        pass
    target = TRACEFS_MOUNTPOINTS[0]
    try:
        mount("tracefs", target, "tracefs")
    except OSError as exc:
        raise KernelFeatureMissing(
            f"tracefs is not mounted and mounting it at {target} failed: {exc.strerror}",
            f"mount it yourself (mount -t tracefs tracefs {target}) or check that the kernel "
            "has CONFIG_TRACING",
        ) from exc
    return find_tracefs()
