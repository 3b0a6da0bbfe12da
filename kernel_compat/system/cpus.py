"""Which CPUs exist and which are online, from /sys/devices/system/cpu."""

from __future__ import annotations

import os

from .._files import read_text, under
from ..fact_errors import KernelFactError

__all__ = ["online_cpus", "possible_cpus"]

_CPU_DIR = "/sys/devices/system/cpu"


def online_cpus(root: str | os.PathLike[str] = "/") -> list[int]:
    """Return the ids of online CPUs (one perf ring per online CPU)."""
    return _read_cpu_list(root, "online")


def possible_cpus(root: str | os.PathLike[str] = "/") -> list[int]:
    """Return the ids of possible CPUs (the size of per-CPU BPF maps)."""
    return _read_cpu_list(root, "possible")


def _read_cpu_list(root: str | os.PathLike[str], which: str) -> list[int]:
    path = under(root, f"{_CPU_DIR}/{which}")
    text = read_text(path, f"{path} does not exist")
    try:
        return _parse_cpu_list(text)
    except ValueError as exc:
        raise KernelFactError(f"cannot parse {path}: {exc}") from exc


def _parse_cpu_list(text: str) -> list[int]:
    """Parse a kernel CPU list like "0-3,5,7-8\\n" into sorted ids."""
    cpus: set[int] = set()
    body = text.strip()
    if not body:
        return []
    for part in body.split(","):
        low, sep, high = part.partition("-")
        try:
            first, last = int(low), int(high) if sep else int(low)
        except ValueError:
            raise ValueError(f"bad CPU range {part!r} in {body!r}") from None
        if first < 0 or last < first:
            raise ValueError(f"bad CPU range {part!r} in {body!r}")
        cpus.update(range(first, last + 1))
    return sorted(cpus)
