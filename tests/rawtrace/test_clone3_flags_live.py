"""clone3's flags, read from cl_args at entry: a process and a thread can be told apart."""

from __future__ import annotations

import ctypes
import os
import threading
import time

import pytest

import rawtrace
from rawtrace import Event

pytestmark = pytest.mark.live

NR_CLONE3 = 435  # x86_64 and arm64 alike (the generic table)
CLONE_THREAD = 0x10000
CLONE_CLEAR_SIGHAND = 0x100000000  # 5.5: above 32 bits, so the whole u64 must be read
SIGCHLD = 17


class CloneArgs(ctypes.Structure):
    """struct clone_args, its first version (CLONE_ARGS_SIZE_VER0, 64 bytes)."""

    _fields_ = [
        (name, ctypes.c_uint64)
        for name in (
            "flags",
            "pidfd",
            "child_tid",
            "parent_tid",
            "exit_signal",
            "stack",
            "stack_size",
            "tls",
        )
    ]


def _clone3(flags: int) -> int:
    """A raw clone3 like fork (the child _exits at once); the child's pid, reaped."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.syscall.restype = ctypes.c_long
    args = CloneArgs(flags=flags, exit_signal=SIGCHLD)
    child = libc.syscall(NR_CLONE3, ctypes.byref(args), ctypes.c_size_t(ctypes.sizeof(args)))
    if child == 0:
        os._exit(0)
    if child < 0:
        pytest.skip(f"clone3 failed here: {os.strerror(ctypes.get_errno())}")
    os.waitpid(child, 0)
    return int(child)


def _clone3_events(tracer: rawtrace.Tracer, returns: set[int]) -> list[Event]:
    found: list[Event] = []
    deadline = time.monotonic() + 5
    while len(found) < len(returns) and time.monotonic() < deadline:
        found += [
            e for e in tracer.read(0.2) if e.event_name == "clone3" and e.return_value in returns
        ]
    return found


def test_clone3_carries_the_flags_it_was_asked_for() -> None:
    with rawtrace.trace("clone3", pid=os.getpid()) as tracer:
        plain = _clone3(0)
        cleared = _clone3(CLONE_CLEAR_SIGHAND)
        events = _clone3_events(tracer, {plain, cleared})
    flags = {e.return_value: e.arg("flags") for e in events}
    assert flags == {plain: 0, cleared: CLONE_CLEAR_SIGHAND}
    assert all(e.arg("vfork") is False for e in events)


def test_a_thread_start_is_a_clone3_with_clone_thread() -> None:
    with rawtrace.trace("clone3", pid=os.getpid()) as tracer:
        thread = threading.Thread(target=lambda: None)
        thread.start()
        thread.join()
        deadline = time.monotonic() + 5
        found: list[Event] = []
        while not found and time.monotonic() < deadline:
            found = [e for e in tracer.read(0.2) if e.event_name == "clone3"]
    if not found:
        pytest.skip("this libc starts threads with clone, not clone3")
    # glibc's pthread_create (2.34 on): CLONE_VM | CLONE_FS | CLONE_FILES | CLONE_SYSVSEM |
    # CLONE_SIGHAND | CLONE_THREAD | CLONE_SETTLS | CLONE_PARENT_SETTID | CLONE_CHILD_CLEARTID
    assert found[0].arg("flags") == 0x3D0F00
    assert found[0].arg("flags") & CLONE_THREAD
