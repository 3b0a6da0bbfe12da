"""Workloads the live tests trace.

Run as a script, `python workload.py COUNT` is one process of a Storm: it waits until its
standard input closes, then makes COUNT vforks (with COUNT 0, until it is killed) and prints
their children's pids on one line.
"""

from __future__ import annotations

import ctypes
import functools
import os
import signal
import subprocess
import sys
from types import TracebackType

# tests/vm sets it in its guests, where QEMU's emulation makes every process start slow: the
# live tests scale their workloads down there.
IN_VM = "RAWTRACE_VM_KERNEL" in os.environ


@functools.cache
def interpreter_comm() -> str:
    """The comm of a process started as sys.executable: "python3", or "python" in a venv, or
    whatever the interpreter's file is called (cut to 15 bytes by the kernel)."""
    said = subprocess.run(
        [sys.executable, "-c", "print(open('/proc/self/comm').read().strip())"],
        capture_output=True,
        text=True,
        check=True,
    )
    return said.stdout.strip()


def spawn_true(count: int) -> list[int]:
    """Run `true` count times, one after the other; their pids. CPython's subprocess starts each
    child with vfork()."""
    pids = []
    for _ in range(count):
        child = subprocess.Popen(["true"])
        pids.append(child.pid)
        child.wait()
    return pids


class Storm:
    """`processes` processes side by side, each making `count` vforks (0: until stopped). They
    start held, so that a tracer can filter on `pids` before the first vfork, and go on
    release(). Leaving the `with` block kills what still runs."""

    def __init__(self, processes: int, count: int = 0) -> None:
        self.count = count
        self.children = [
            subprocess.Popen(
                [sys.executable, __file__, str(count)],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                text=True,
            )
            for _ in range(processes)
        ]
        self.pids = [child.pid for child in self.children]

    def release(self) -> None:
        for child in self.children:
            if child.stdin is not None:
                child.stdin.close()
                child.stdin = None  # communicate() would flush it, closed or not

    def running(self) -> bool:
        return any(child.poll() is None for child in self.children)

    def wait(self, timeout: float = 300) -> dict[int, list[int]]:
        """The children's pids that each process made, by its pid (a bounded storm)."""
        made = {}
        for child in self.children:
            out, _ = child.communicate(timeout=timeout)
            assert child.returncode == 0
            made[child.pid] = [int(pid) for pid in out.split()]
            assert len(made[child.pid]) == self.count
        return made

    def __enter__(self) -> Storm:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        for child in self.children:
            if child.poll() is None:
                child.kill()
            child.communicate()  # reaps it and closes its pipes


PR_SET_PDEATHSIG = 1


def _storm_process(count: int) -> None:
    # A storm outlived a test run killed by a timeout once, and flooded every later trace on
    # the host for half an hour: die with the parent, whatever kills it.
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() == 1:  # the parent died before the prctl
        return
    sys.stdin.read()  # held until the parent closes our stdin
    pids = []
    while count == 0 or len(pids) < count:
        pids += spawn_true(1)
    print(" ".join(map(str, pids)))


if __name__ == "__main__":
    _storm_process(int(sys.argv[1]))
