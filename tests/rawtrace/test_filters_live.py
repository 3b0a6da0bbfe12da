"""Filters compiled into the programs: the ring delivers only matching calls (the tracer's
delivered count is what came out of the rings), under a mixed workload."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator

import pytest
from workload import interpreter_comm

import rawtrace
from kernel_compat.system.cgroups import cgroup2_mountpoint
from rawtrace import Event

pytestmark = pytest.mark.live

# A helper that sets its comm, optionally drops to a uid, waits for a go, then vforks N times.
WORKER = """
import os, subprocess, sys
comm, uid, count = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
open('/proc/self/comm', 'w').write(comm)
if uid:
    os.setgid(uid); os.setuid(uid)
sys.stdin.read()
for _ in range(count):
    subprocess.run(['/bin/true'])
"""


class Worker:
    def __init__(self, comm: str, count: int, uid: int = 0, cgroup: str | None = None) -> None:
        self.count = count
        self.process = subprocess.Popen(
            [sys.executable, "-c", WORKER, comm, str(uid), str(count)], stdin=subprocess.PIPE
        )
        self.pid = self.process.pid
        if cgroup:
            with open(os.path.join(cgroup, "cgroup.procs"), "w") as procs:
                procs.write(str(self.pid))

    def go(self) -> None:
        self.process.communicate(b"")
        assert self.process.returncode == 0


def run_workers(tracer: rawtrace.Tracer, workers: list[Worker]) -> list[Event]:
    for worker in workers:
        worker.go()
    events: list[Event] = []
    deadline = time.monotonic() + 3
    while time.monotonic() < deadline:
        events += tracer.read(0.2)
    return events


def mixed() -> list[Worker]:
    return [Worker("rt-alpha", 3), Worker("rt-beta", 4), Worker("rt-gamma", 2, uid=65534)]


def by_pid(events: list[Event]) -> dict[int, int]:
    counts: dict[int, int] = {}
    for event in events:
        counts[event.process_id] = counts.get(event.process_id, 0) + 1
    return counts


def test_pids_or_together() -> None:
    workers = mixed()
    with rawtrace.trace("vfork", pid=[workers[0].pid, workers[2].pid]) as tracer:
        events = run_workers(tracer, workers)
        delivered = tracer.stats().delivered
    assert by_pid(events) == {workers[0].pid: 3, workers[2].pid: 2}
    assert delivered == 5


def test_tid() -> None:
    workers = mixed()
    with rawtrace.trace("vfork", tid=workers[1].pid) as tracer:
        events = run_workers(tracer, workers)
        delivered = tracer.stats().delivered
    assert by_pid(events) == {workers[1].pid: 4}
    assert delivered == 4


def test_uid() -> None:
    workers = mixed()
    with rawtrace.trace("vfork", uid=65534) as tracer:
        events = run_workers(tracer, workers)
        delivered = tracer.stats().delivered
    assert by_pid(events) == {workers[2].pid: 2}
    assert delivered == 2


def test_comms_or_together_and_kinds_and() -> None:
    workers = mixed()
    with rawtrace.trace(
        "vfork", comm=["rt-alpha", "rt-gamma"], pid=[workers[0].pid, workers[1].pid]
    ) as tracer:
        events = run_workers(tracer, workers)
        delivered = tracer.stats().delivered
    assert by_pid(events) == {workers[0].pid: 3}  # gamma's pid and beta's comm do not match
    assert delivered == 3


def test_comms_sharing_their_first_8_or_14_bytes_are_told_apart() -> None:
    # The programs compare the comm's 16 bytes as two 8-byte words: "rt-share" matches its
    # first word and "rt-fifteen-byt" all but its last byte, and neither is the name filtered.
    # A name written longer than 15 bytes is cut by the kernel: that one is the same comm.
    workers = [
        Worker("rt-share", 2),
        Worker("rt-share8-first", 3),
        Worker("rt-fifteen-byte", 4),
        Worker("rt-fifteen-byt", 5),
        Worker("rt-fifteen-byte-and-more", 6),
    ]
    with rawtrace.trace("vfork", comm=["rt-share", "rt-fifteen-byte"]) as tracer:
        events = run_workers(tracer, workers)
        delivered = tracer.stats().delivered
    assert by_pid(events) == {workers[0].pid: 2, workers[2].pid: 4, workers[4].pid: 6}
    assert delivered == 12


@pytest.fixture
def cgroup() -> Iterator[str]:
    path = os.path.join(cgroup2_mountpoint(), f"rawtrace-test-{os.getpid()}")
    os.mkdir(path)
    try:
        yield path
    finally:
        with open(os.path.join(path, "cgroup.procs")) as procs:
            assert procs.read() == ""  # the workers exited
        os.rmdir(path)


def test_cgroup_by_path_and_by_id(cgroup: str) -> None:
    inside = Worker("rt-inside", 3, cgroup=cgroup)
    outside = Worker("rt-outside", 3)
    relative = "/" + os.path.relpath(cgroup, cgroup2_mountpoint())
    with rawtrace.trace("vfork", cgroup=relative) as tracer:
        events = run_workers(tracer, [inside, outside])
    assert by_pid(events) == {inside.pid: 3}
    assert {event.cgroup_id for event in events} == {os.stat(cgroup).st_ino}


def test_idle_pid_gets_nothing_of_a_storm() -> None:
    idle = subprocess.Popen(["sleep", "30"])
    storm = Worker("rt-storm", 200)
    try:
        with rawtrace.trace("vfork", pid=idle.pid) as tracer:
            events = run_workers(tracer, [storm])
            delivered = tracer.stats().delivered
    finally:
        idle.kill()
        idle.wait()
    assert events == []
    assert delivered == 0


TREE = """
import os, subprocess, sys, threading
# level 2: a forked child; in it a thread (clone) vforks true, then the child vforks a shell,
# which vforks true (level 3)
pid = os.fork()
if pid == 0:
    thread = threading.Thread(target=subprocess.run, args=(['/bin/true'],))
    thread.start()
    thread.join()
    subprocess.run(['sh', '-c', '/bin/true; exit 0'])
    os._exit(0)
os.waitpid(pid, 0)
sys.exit(7)
"""


def test_command_and_its_tree_with_exit_status() -> None:
    outsider = Worker("rt-outsider", 3)
    result = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "rawtrace",
            "trace",
            "vfork",
            "--json",
            "--",
            sys.executable,
            "-c",
            TREE,
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert result.stderr is not None
    assert "tracing vfork" in result.stderr.readline()
    outsider.go()
    out, err = result.communicate(timeout=120)
    assert result.returncode == 7, err
    events = [json.loads(line) for line in out.splitlines()]
    comms = [e["processName"] for e in events]
    python = interpreter_comm()
    assert comms == [python, python, "sh"], comms
    from_thread, forked_python, shell = events
    assert from_thread["processId"] == forked_python["processId"]
    assert from_thread["threadId"] != from_thread["processId"]
    assert shell["processId"] == forked_python["returnValue"]
    assert outsider.pid not in {e["processId"] for e in events}
