"""The exit event: one per process, whatever ends it, with what its parent's waitpid() says."""

from __future__ import annotations

import os
import resource
import signal
import sys
import time
from pathlib import Path

import pytest

import rawtrace
from rawtrace import Event

pytestmark = pytest.mark.live

THREADS_THEN_EXIT = """
import os, threading, time
for _ in range(4):
    threading.Thread(target=time.sleep, args=(30,), daemon=True).start()
os._exit(3)
"""
# the leader ends first (the exit syscall ends one thread); the last thread's exit_group ends
# the process
LEADER_FIRST = """
import ctypes, os, threading, time
threading.Thread(target=lambda: (time.sleep(0.3), os._exit(4))).start()
ctypes.CDLL(None).syscall(60, 9)
"""


def _spawn(argv: list[str], *, core: bool = False, cwd: Path | None = None) -> int:
    pid = os.fork()
    if pid == 0:
        try:
            limit = resource.RLIM_INFINITY if core else 0
            resource.setrlimit(resource.RLIMIT_CORE, (limit, limit))
            if cwd is not None:
                os.chdir(cwd)
            os.execv(argv[0], argv)
        finally:
            os._exit(127)
    return pid


def _wait_status(pid: int, kill: int | None = None) -> int:
    if kill is not None:
        time.sleep(0.2)
        os.kill(pid, kill)
    return os.waitpid(pid, 0)[1]


def test_every_end_of_a_process_as_waitpid_tells_it(tmp_path: Path) -> None:
    # decided by the kernel, not by task_layout(): a layout that fails to read where the kernel
    # has BTF fails this test rather than skipping it
    if not Path("/sys/kernel/btf/vmlinux").exists():
        pytest.skip("no BTF: exit comes from exit_group() calls only (README)")
    python = sys.executable
    with rawtrace.trace("exit", follow=os.getpid()) as tracer:
        statuses = {}
        pid = _spawn(["/bin/sh", "-c", "exit 7"])
        statuses[pid] = _wait_status(pid)
        pid = _spawn(["/bin/sleep", "30"])
        statuses[pid] = _wait_status(pid, signal.SIGKILL)
        pid = _spawn(["/bin/sleep", "30"])
        statuses[pid] = _wait_status(pid, signal.SIGTERM)
        pid = _spawn([python, "-c", "import os; os.abort()"], core=True, cwd=tmp_path)
        statuses[pid] = _wait_status(pid)
        pid = _spawn([python, "-c", "import os; os.abort()"])
        statuses[pid] = _wait_status(pid)
        pid = _spawn([python, "-c", THREADS_THEN_EXIT])
        statuses[pid] = _wait_status(pid)
        leader_first = _spawn([python, "-c", LEADER_FIRST])
        statuses[leader_first] = _wait_status(leader_first)
        events: list[Event] = []
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and not set(statuses) <= {
            e.host_process_id for e in events
        }:
            events += tracer.read(0.2)
        lost = tracer.stats().lost
    assert lost == 0
    told = {}
    for pid in statuses:
        (event,) = [e for e in events if e.host_process_id == pid]  # one per process
        assert (event.event_name, event.syscall, event.return_value) == ("exit", "", 0)
        told[pid] = (event.arg("exit_code"), event.arg("signal_code"), event.arg("core_dumped"))
    assert told == {
        pid: (
            os.WEXITSTATUS(status) if os.WIFEXITED(status) else 0,
            os.WTERMSIG(status) if os.WIFSIGNALED(status) else 0,
            os.WCOREDUMP(status),
        )
        for pid, status in statuses.items()
    }
    codes = {pid: told[pid][:2] for pid in statuses}
    assert sorted(codes.values()) == sorted(
        [(7, 0), (0, 9), (0, 15), (0, 6), (0, 6), (3, 0), (4, 0)]
    )
    # the last thread ended it: not the leader, which had gone first
    (last,) = [e for e in events if e.host_process_id == leader_first]
    assert last.host_thread_id != leader_first
