"""vfork traced end to end in the running kernel: real programs, real rings, exact pids."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import pytest
from workload import spawn_true

import rawtrace
from kernel_compat import syscall_table
from rawtrace import Event

pytestmark = pytest.mark.live


def collect(tracer: rawtrace.Tracer, wanted: int, pid: int, timeout: float = 5.0) -> list[Event]:
    events: list[Event] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        events += [e for e in tracer.read(0.2) if e.process_id == pid]
        if len(events) >= wanted:
            # give a duplicate or a stray child return the chance to show up
            events += [e for e in tracer.read(0.2) if e.process_id == pid]
            break
    return events


def test_n_children_arrive_exactly() -> None:
    with rawtrace.trace("vfork") as tracer:
        pids = spawn_true(20)
        events = collect(tracer, 20, os.getpid())
        stats = tracer.stats()
    assert [e.arg("pid") for e in events] == pids
    assert [e.return_value for e in events] == pids
    assert {(e.process_id, e.thread_id, e.host_process_id) for e in events} == {
        (os.getpid(), os.getpid(), os.getpid())
    }
    assert {e.process_name for e in events} == {_comm()}
    assert {e.user_id for e in events} == {os.getuid()}
    assert all(0 < e.call_start <= e.timestamp for e in events)
    assert abs(events[-1].timestamp - time.time_ns()) < 10 * 10**9
    assert stats.lost == 0 and stats.undecodable == 0


def test_each_event_names_the_call_that_made_it() -> None:
    # arm64 has no vfork syscall: glibc's vfork() is clone(CLONE_VM | CLONE_VFORK), and those
    # clone calls are the event (rawtrace/events/stand_ins.py)
    calls = {"clone", "clone3"} if "vfork" in syscall_table().absent else {"vfork"}
    with rawtrace.trace("vfork") as tracer:
        pids = spawn_true(50)
        events = collect(tracer, 50, os.getpid(), timeout=20.0)
    assert [e.arg("pid") for e in events] == pids
    assert {e.syscall for e in events} <= calls
    assert {e.event_name for e in events} == {"vfork"} and {e.event_id for e in events} == {58}
    assert all(e.arg("hold_ns") > 0 for e in events)
    assert {e.arg("released_by") for e in events} == {"execve"}
    assert all(str(e.arg("exec_path")).endswith("/true") for e in events)


def _comm() -> str:
    with open("/proc/self/comm") as f:
        return f.read().rstrip("\n")


def test_pid_filter_runs_in_the_kernel() -> None:
    other = subprocess.Popen(
        [sys.executable, "-c", "import subprocess; [subprocess.run(['true']) for _ in range(30)]"]
    )
    with rawtrace.trace("vfork", pid=os.getpid()) as tracer:
        pids = spawn_true(5)
        events = collect(tracer, 5, os.getpid())
        other.wait()
        strays = tracer.read(0.3)
        delivered = tracer.stats().delivered
    assert [e.arg("pid") for e in events] == pids
    assert strays == []
    assert delivered == 5


def test_comm_filter() -> None:
    script = (
        "import subprocess, sys; open('/proc/self/comm', 'w').write('rt-comm-filter');"
        "sys.stdin.read(); [subprocess.run(['true']) for _ in range(3)]"
    )
    child = subprocess.Popen([sys.executable, "-c", script], stdin=subprocess.PIPE)
    with rawtrace.trace("vfork", comm="rt-comm-filter") as tracer:
        spawn_true(3)  # not ours: another comm
        child.communicate(b"")
        events = collect(tracer, 3, child.pid)
        delivered = tracer.stats().delivered
    assert len(events) == 3
    assert {e.process_name for e in events} == {"rt-comm-filter"}
    assert delivered == 3


def test_failed_vfork_reports_minus_eagain() -> None:
    """Under RLIMIT_NPROC = 0 an unprivileged uid cannot vfork: the call returns -EAGAIN."""
    script = "\n".join(
        [
            "import os, resource, subprocess, sys",
            "os.setgroups([]); os.setgid(65534); os.setuid(65534)",
            "resource.setrlimit(resource.RLIMIT_NPROC, (0, 0))",
            "sys.stdin.read()",
            "try:",
            "    subprocess.run(['true'])",
            "except OSError as exc:",
            "    sys.exit(exc.errno)",
        ]
    )
    child = subprocess.Popen([sys.executable, "-c", script], stdin=subprocess.PIPE)
    with rawtrace.trace("vfork", pid=child.pid) as tracer:
        child.communicate(b"")
        events = collect(tracer, 1, child.pid)
    assert child.returncode == 11  # EAGAIN, as the child itself saw it
    assert [(e.return_value, e.arg("pid"), e.user_id) for e in events] == [(-11, 0, 65534)]


def test_hostile_comm_comes_out_of_json_as_one_line() -> None:
    hostile = "a\nb\x1b[31mc\x07"
    script = (
        f"import subprocess, sys; open('/proc/self/comm', 'w').write({hostile!r});"
        "sys.stdin.read(); subprocess.run(['true'])"
    )
    child = subprocess.Popen([sys.executable, "-c", script], stdin=subprocess.PIPE)
    tracer = subprocess.Popen(
        [sys.executable, "-m", "rawtrace", "trace", "vfork", "--json", f"--pid={child.pid}"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert tracer.stderr is not None
    assert "tracing vfork" in tracer.stderr.readline()
    child.communicate(b"")
    time.sleep(0.3)
    tracer.terminate()
    out, err = tracer.communicate(timeout=10)
    assert tracer.returncode == 0, err
    lines = out.splitlines()
    assert len(lines) == 1
    event = json.loads(lines[0])
    assert event["processName"] == hostile
    assert event["processId"] == child.pid
    assert "\x1b" not in out and "\x07" not in out
    assert "1 events, 0 lost" in err


def test_sigterm_flushes_and_summarises() -> None:
    tracer = subprocess.Popen(
        [sys.executable, "-m", "rawtrace", "trace", "vfork", f"--pid={os.getpid()}"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert tracer.stderr is not None
    assert "tracing vfork" in tracer.stderr.readline()
    pids = spawn_true(7)
    tracer.terminate()  # at once: the events still sit below the rings' watermark
    out, err = tracer.communicate(timeout=10)
    assert tracer.returncode == 0, err
    header, *rows = out.splitlines()
    assert header.split() == ["TIME", "PID", "COMM", "EVENT", "RET", "ARGS"]
    assert [row.split()[5] for row in rows] == [f"pid={pid}" for pid in pids]
    assert "7 events, 0 lost (cpu0: 0" in err
