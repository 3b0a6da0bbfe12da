"""Sysctls and security settings that decide what an unprivileged tracer may do."""

from __future__ import annotations

import os

from .._files import parse_int, read_text, under
from ..fact_errors import FeatureMissing, KernelFactError

__all__ = ["lockdown", "perf_event_paranoid", "unprivileged_bpf_disabled"]

_PARANOID = "/proc/sys/kernel/perf_event_paranoid"
_UNPRIV_BPF = "/proc/sys/kernel/unprivileged_bpf_disabled"
_LOCKDOWN = "/sys/kernel/security/lockdown"


def perf_event_paranoid(root: str | os.PathLike[str] = "/") -> int:
    """Return kernel.perf_event_paranoid (-1 .. 2; some distributions add 3 and 4)."""
    path = under(root, _PARANOID)
    return parse_int(path, read_text(path, f"{path} does not exist (no perf events?)"))


def unprivileged_bpf_disabled(root: str | os.PathLike[str] = "/") -> int:
    """Return kernel.unprivileged_bpf_disabled (0 allowed, 1 locked off, 2 off but changeable)."""
    path = under(root, _UNPRIV_BPF)
    return parse_int(path, read_text(path, f"{path} does not exist (no bpf() syscall?)"))


def lockdown(root: str | os.PathLike[str] = "/") -> str | None:
    """Return the lockdown mode ("none", "integrity", "confidentiality"), None if absent."""
    path = under(root, _LOCKDOWN)
    try:
        text = read_text(path, f"{path} does not exist")
    except FeatureMissing:
        # No lockdown LSM (or securityfs not mounted): nothing is locked down by it.
        return None
    try:
        return _parse_lockdown(text)
    except ValueError as exc:
        raise KernelFactError(f"cannot parse {path}: {exc}") from exc


def _parse_lockdown(text: str) -> str:
    """Return the bracketed (active) word of "none [integrity] confidentiality"."""
    for word in text.split():
        if len(word) > 2 and word.startswith("[") and word.endswith("]"):
            return word[1:-1]
    raise ValueError(f"no [active] mode in {text.strip()!r}")
