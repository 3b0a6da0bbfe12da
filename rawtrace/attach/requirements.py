"""Pre-checks an attach family makes before trying: build options and symbols it cannot work
without, turned into errors that name what is missing."""

from __future__ import annotations

import functools

from kernel_compat import FeatureMissing, KernelConfig, KernelFactError, kernel_config
from kernel_compat import syscall_symbol as _syscall_symbol
from rawtrace.errors import KernelFeatureMissing


@functools.cache
def _config() -> KernelConfig | None:
    try:
        return kernel_config()
    except KernelFactError:
        # Neither /proc/config.gz nor /boot/config-*: the attempt itself will tell.
        return None


def require_config(option: str, what: str, fix: str) -> None:
    """Raise KernelFeatureMissing when the kernel's config is known and lacks CONFIG_<option>."""
    config = _config()
    if config is not None and not config.enabled(option):
        raise KernelFeatureMissing(
            f"{what} are not available: this kernel was built without CONFIG_{option}", fix
        )


def require_kprobes() -> None:
    """Both kprobe families need kprobes, the tracefs/PMU front end and BPF on them."""
    fix = "the other attach families work without it (--attach auto picks one)"
    require_config("KPROBES", "kprobes", fix)
    require_config("KPROBE_EVENTS", "kprobe events", fix)
    require_config("BPF_EVENTS", "BPF programs on kprobes", fix)


def syscall_symbol(syscall: str) -> str:
    """The kernel function implementing `syscall`, to put a kprobe on."""
    try:
        return _syscall_symbol(syscall)
    except FeatureMissing as exc:
        raise KernelFeatureMissing(
            f"cannot find the kernel function of syscall {syscall} ({exc})",
            "use --attach tracepoint",
        ) from exc
