"""Filters applied in user space, the fallback for a kernel that cannot apply them in BPF, forced
with filters_in="user": the same events as in the kernel, but every call reaches the rings."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from test_filters_live import WORKER

import rawtrace
from rawtrace import Event

pytestmark = pytest.mark.live

# Waits for a go, then runs the workers one after the other (each started with a vfork).
SPAWNER = """
import subprocess, sys
worker = sys.argv[1]
sys.stdin.read()
for spec in sys.argv[2:]:
    comm, uid, count = spec.split(":")
    subprocess.run([sys.executable, "-c", worker, comm, uid, count], stdin=subprocess.DEVNULL,
                   check=True)
"""
WORKERS = ("rt-alpha:0:3", "rt-beta:0:4", "rt-gamma:65534:2")


def trace_spawner(filters_in: str) -> tuple[list[Event], int, tuple[str, ...]]:
    """The events that pass comm and uid filters (applied as `filters_in` says) within a
    followed tree, which stays in the kernel: its events, delivered count and user-space kinds."""
    spawner = subprocess.Popen(
        [sys.executable, "-c", SPAWNER, WORKER, *WORKERS], stdin=subprocess.PIPE
    )
    with rawtrace.trace(
        "vfork",
        comm=["rt-alpha", "rt-gamma"],
        uid=0,
        follow=spawner.pid,
        filters_in=filters_in,
    ) as tracer:
        spawner.communicate(b"")
        assert spawner.returncode == 0
        tracer.stop()  # every call has been made: the rings hold all there is
        events = list(tracer)
        return events, tracer.stats().delivered, tracer.filters_in_user_space


def test_user_space_filters_pass_the_same_events() -> None:
    in_kernel, kernel_delivered, kernel_kinds = trace_spawner("kernel")
    in_user, user_delivered, user_kinds = trace_spawner("user")
    assert (kernel_kinds, user_kinds) == ((), ("uid", "comm"))
    # rt-alpha's three vforks: rt-beta has another comm, rt-gamma another uid
    for events in (in_kernel, in_user):
        assert [(e.process_name, e.user_id) for e in events] == [("rt-alpha", 0)] * 3
        assert len({e.process_id for e in events}) == 1
        assert all(e.arg("pid") == e.return_value > 0 for e in events)
    # in the kernel, the other calls never reach a ring; in user space, all of the tree's do:
    # the spawner's 3 vforks and the workers' 3 + 4 + 2
    assert kernel_delivered == 3
    assert user_delivered == 12


def test_auto_keeps_them_in_the_kernel_that_has_every_helper() -> None:
    # every filter's helper is in 4.18 and later, and the record needs them anyway
    with rawtrace.trace("vfork", pid=1, tid=1, uid=0, comm="init", cgroup=1) as tracer:
        assert tracer.filters_in_user_space == ()
        assert tracer.filters.pids == (1,)
    with rawtrace.trace("vfork", pid=1, comm="init", filters_in="user") as tracer:
        assert tracer.filters_in_user_space == ("pid", "comm")
        assert (tracer.filters.pids, tracer.filters.comms) == ((), ())


def test_features_say_where_each_kind_runs() -> None:
    report = subprocess.run(
        [sys.executable, "-m", "rawtrace", "features", "--json"],
        capture_output=True,
        text=True,
        check=True,
    )
    rows = json.loads(report.stdout)["filters"]
    assert rows == [
        {"kind": kind, "where": "kernel", "reason": None}
        for kind in ("pid", "tid", "uid", "comm", "cgroup", "follow")
    ]
    table = subprocess.run(
        [sys.executable, "-m", "rawtrace", "features"], capture_output=True, text=True, check=True
    )
    assert "\n  comm            kernel\n" in table.stdout
