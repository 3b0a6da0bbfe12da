"""A Tracer's life: started once, closed once, read by the process that started it (from as
many threads as it likes), its stats kept after close()."""

from __future__ import annotations

import os
import threading
import time

import pytest
from workload import spawn_true

import rawtrace
from rawtrace import Event, RawtraceError

# the outputs and the API around the trace, not the kernel: run once, on the host
pytestmark = [pytest.mark.live, pytest.mark.host_only]


def _vforked(tracer: rawtrace.Tracer, count: int) -> list[Event]:
    """The vfork events of `count` children of this process (the tracer filters on its pid)."""
    children = set(spawn_true(count))
    events: list[Event] = []
    deadline = time.monotonic() + 10
    while {e.return_value for e in events} < children and time.monotonic() < deadline:
        events += tracer.read(0.2)
    return events


def test_a_second_start_is_refused_and_the_first_goes_on() -> None:
    with rawtrace.trace("vfork", pid=os.getpid()) as tracer:
        with pytest.raises(RawtraceError, match="this tracer has started already"):
            tracer.start()
        assert len(_vforked(tracer, 3)) == 3


def test_a_closed_tracer_cannot_start_again() -> None:
    tracer = rawtrace.trace("vfork", pid=os.getpid())
    with tracer:
        pass
    with pytest.raises(RawtraceError, match="closed and cannot start again"), tracer:
        pass


def test_stats_are_kept_after_close() -> None:
    with rawtrace.trace("vfork", pid=os.getpid()) as tracer:
        events = _vforked(tracer, 4)
    assert len(events) == 4
    stats = tracer.stats()
    assert (stats.delivered, stats.lost, stats.undecodable) == (4, 0, 0)


def test_two_threads_reading_share_the_events() -> None:
    count = 40
    with rawtrace.trace("vfork", pid=os.getpid()) as tracer:
        seen: list[list[Event]] = [[], []]
        failures: list[BaseException] = []

        def read(into: list[Event]) -> None:
            try:
                while not tracer.ended:
                    into += tracer.read(0.05)
            except BaseException as exc:  # reported by the main thread
                failures.append(exc)

        threads = [threading.Thread(target=read, args=(box,)) for box in seen]
        for thread in threads:
            thread.start()
        children = spawn_true(count)
        time.sleep(0.5)
        tracer.stop()
        for thread in threads:
            thread.join()
        rest = tracer.read(0)
    assert failures == []
    pids = sorted(e.return_value for e in [*seen[0], *seen[1], *rest])
    assert pids == sorted(children)  # each event once, none lost


def test_a_forked_child_is_refused_and_leaves_the_parents_trace_alone() -> None:
    with rawtrace.trace("vfork", pid=os.getpid()) as tracer:
        child = os.fork()
        if child == 0:
            status = 1
            try:
                tracer.read(0)
            except RawtraceError as exc:
                status = 0 if "this process is a fork() of it" in str(exc) else 2
            tracer.close()  # the parent's programs stay attached
            os._exit(status)
        assert os.waitpid(child, 0)[1] == 0
        assert len(_vforked(tracer, 3)) == 3
