"""Workloads the live tests trace."""

from __future__ import annotations

import subprocess


def spawn_true(count: int) -> list[int]:
    """Run `true` count times, one after the other; their pids. CPython's subprocess starts each
    child with vfork()."""
    pids = []
    for _ in range(count):
        child = subprocess.Popen(["true"])
        pids.append(child.pid)
        child.wait()
    return pids
