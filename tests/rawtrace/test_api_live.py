"""The embedding API: the same events through iteration, read(), callbacks and asyncio, a
fileno() for other event loops, and close() from another thread."""

from __future__ import annotations

import asyncio
import os
import selectors
import threading
import time

import pytest
from workload import spawn_true

import rawtrace
from rawtrace import Event

pytestmark = pytest.mark.live


def child_pids(events: list[Event]) -> list[int]:
    return [int(e.arg("pid") or 0) for e in events]


def test_iteration_until_stop() -> None:
    with rawtrace.trace("vfork", pid=os.getpid()) as tracer:
        pids = spawn_true(4)
        got = []
        for event in tracer:
            got.append(event)
            if len(got) == 4:
                tracer.stop()
    assert child_pids(got) == pids


def test_read_follows_selectors_rules() -> None:
    with rawtrace.trace("vfork", pid=os.getpid()) as tracer:
        # Bounds on a shared 2-core machine: read(0) takes about 0.1 ms idle, read(0.3) 0.30 s.
        # Each upper bound is over ten times that, and what it rules out is a wait: read(0)
        # waiting for the 0.3 s a timeout takes, read(0.3) waiting for events that never come.
        started = time.monotonic()
        assert tracer.read(0) == []  # 0 polls: returns at once
        assert time.monotonic() - started < 0.25
        started = time.monotonic()
        assert tracer.read(0.3) == []  # a timeout waits that long (a sleep never ends early)
        assert 0.29 <= time.monotonic() - started < 3.0
        pids = spawn_true(3)
        got = tracer.read()  # None blocks until some come
        while len(got) < 3:
            got += tracer.read(1.0)
    assert child_pids(got) == pids


def test_callbacks() -> None:
    got: list[Event] = []
    lost: list[tuple[int, int]] = []

    def on_event(event: Event) -> None:
        got.append(event)
        if len(got) == 5:
            tracer.stop()

    tracer = rawtrace.trace(
        "vfork", pid=os.getpid(), on_event=on_event, on_lost=lambda c, n: lost.append((c, n))
    )
    with tracer:
        pids = spawn_true(5)
        tracer.run(duration=10)
    assert child_pids(got) == pids
    assert lost == []


def test_asyncio_without_threads() -> None:
    async def collect() -> tuple[list[int], list[Event]]:
        with rawtrace.trace("vfork", pid=os.getpid()) as tracer:
            pids = spawn_true(3)
            got = []
            async for event in tracer:
                got.append(event)
                if len(got) == 3:
                    tracer.stop()
            return pids, got

    threads_before = threading.active_count()
    pids, got = asyncio.run(collect())
    assert child_pids(got) == pids
    assert threading.active_count() == threads_before


def test_asyncio_waits_for_events_that_come_later() -> None:
    # The rings are empty when the iteration starts: it must wait in the loop (add_reader and
    # its max_wait timer) while the children are made by a callback of that same loop.
    async def collect() -> tuple[list[int], list[Event]]:
        pids: list[int] = []
        with rawtrace.trace("vfork", pid=os.getpid()) as tracer:
            asyncio.get_running_loop().call_later(0.2, lambda: pids.extend(spawn_true(3)))
            got = []
            async for event in tracer:
                got.append(event)
                if len(got) == 3:
                    tracer.stop()
            return pids, got

    pids, got = asyncio.run(asyncio.wait_for(collect(), 60))
    assert len(pids) == 3
    assert child_pids(got) == pids


def test_fileno_nests_in_a_selector() -> None:
    with rawtrace.trace("vfork", pid=os.getpid()) as tracer, selectors.DefaultSelector() as sel:
        sel.register(tracer, selectors.EVENT_READ)
        pids = spawn_true(2)
        got: list[Event] = []
        deadline = time.monotonic() + 5
        while len(got) < 2 and time.monotonic() < deadline:
            sel.select(timeout=tracer.max_wait)
            got += tracer.read(0)
    assert child_pids(got) == pids


def test_close_from_another_thread_ends_a_blocked_read() -> None:
    tracer = rawtrace.trace("vfork", pid=os.getpid()).start()
    result: list[list[Event]] = []
    reader = threading.Thread(target=lambda: result.append(tracer.read()))
    reader.start()
    time.sleep(0.3)
    tracer.close()
    # read() without a timeout never returns by itself: only close() can have ended it
    reader.join(timeout=5)
    assert not reader.is_alive()
    assert result == [[]]
