"""Facts about one process from /proc/PID: its resident memory and its locked-memory limit."""

from __future__ import annotations

import os

from .._files import read_text, under
from ..fact_errors import KernelFactError

__all__ = ["memlock_limit", "resident_kib"]


def resident_kib(pid: int | str = "self", root: str | os.PathLike[str] = "/") -> int:
    """Return the process's resident set size in KiB (VmRSS in /proc/PID/status)."""
    path = under(root, f"/proc/{pid}/status")
    text = read_text(path, f"{path} does not exist (no such process?)")
    try:
        return _parse_vm_kib(text, "VmRSS")
    except ValueError as exc:
        raise KernelFactError(f"cannot parse {path}: {exc}") from exc


def memlock_limit(pid: int | str = "self", root: str | os.PathLike[str] = "/") -> int | None:
    """Return the soft RLIMIT_MEMLOCK of the process in bytes, None when unlimited (from
    /proc/PID/limits, which shows any process's limits, unlike getrlimit)."""
    path = under(root, f"/proc/{pid}/limits")
    text = read_text(path, f"{path} does not exist (no such process?)")
    try:
        return _parse_limit(text, "Max locked memory")
    except ValueError as exc:
        raise KernelFactError(f"cannot parse {path}: {exc}") from exc


def _parse_vm_kib(text: str, key: str) -> int:
    """The KiB of a "VmRSS:\\t  1932 kB" line of a /proc/PID/status text."""
    for line in text.splitlines():
        name, _, value = line.partition(":")
        if name == key:
            number, _, unit = value.strip().partition(" ")
            if unit != "kB" or not number.isdigit():
                raise ValueError(f"bad {key} value {value.strip()!r}")
            return int(number)
    raise ValueError(f"no {key} line (a kernel thread, or a zombie?)")


def _parse_limit(text: str, name: str) -> int | None:
    """The soft limit on a /proc/PID/limits line: "Max locked memory  8388608  8388608  bytes"."""
    for line in text.splitlines():
        if line.startswith(name):
            columns = line[len(name) :].split()
            soft = columns[0] if columns else ""
            if soft == "unlimited":
                return None
            if not soft.isdigit():
                raise ValueError(f"bad {name!r} soft limit {soft!r}")
            return int(soft)
    raise ValueError(f"no {name!r} line")
