"""Both transports in the running kernel: exact delivery, counted losses, a flush on exit."""

from __future__ import annotations

import mmap
import os
import signal
import subprocess
import sys
from contextlib import ExitStack

import pytest
from workload import spawn_true

import rawtrace
from rawtrace import RawtraceError
from rawtrace.transports import opening
from rawtrace.transports.perf_reader import PerfReader

pytestmark = pytest.mark.live

TRANSPORTS = ["perf", "ringbuf"]


def drained(tracer: rawtrace.Tracer) -> list[int]:
    return [event.arg("pid") for event in tracer.read(0)]  # type: ignore[misc]


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_each_transport_delivers_every_child_in_order(transport: str) -> None:
    with rawtrace.trace("vfork", pid=os.getpid(), transport=transport) as tracer:
        pids = spawn_true(20)
        tracer.stop()
        children = [event.arg("pid") for event in tracer]
        stats = tracer.stats()
        used = tracer.transport_used
    assert used == transport
    assert children == pids
    assert (stats.delivered, stats.lost, stats.undecodable) == (20, 0, 0)


def test_auto_takes_the_ring_buffer_where_the_kernel_has_one() -> None:
    with rawtrace.trace("vfork", pid=os.getpid()) as tracer:
        assert tracer.transport_used == "ringbuf"  # this kernel is 5.8 or later


def test_auto_falls_back_to_perf_when_the_kernel_refuses_the_ring_buffer(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Every kernel CI runs has a ring buffer, so the fallback is forced: the ring is asked for
    # with a size that is not a power of two, and the kernel's own check refuses it with
    # EINVAL, the errno a kernel before 5.8 gives for the unknown map type.
    monkeypatch.setattr(opening, "ring_size", lambda pages, cpus: 3 * mmap.PAGESIZE)
    with ExitStack() as resources:
        transport = opening.open_transport("auto", resources, 1)
        assert transport.name == "perf"
        assert transport.fallbacks == (
            "ringbuf: this kernel has no BPF ring buffer (BPF_MAP_TYPE_RINGBUF, 5.8+)",
        )
    with rawtrace.trace("vfork", pid=os.getpid()) as tracer:
        assert tracer.transport_used == "perf"
        pids = spawn_true(3)
        assert drained(tracer) == pids
    with (
        pytest.raises(RawtraceError, match="no BPF ring buffer"),
        rawtrace.trace("vfork", transport="ringbuf"),
    ):
        pass  # asked for by name, the ring buffer is refused, not replaced


def test_an_unknown_transport_is_refused() -> None:
    with (
        pytest.raises(RawtraceError, match="unknown transport 'pipe'"),
        rawtrace.trace("vfork", transport="pipe"),
    ):
        pass


def test_ringbuf_losses_are_counted_per_cpu_exactly() -> None:
    # one page per CPU: a ring of 8 KiB holds well under 300 records
    with rawtrace.trace("vfork", pid=os.getpid(), pages=1, transport="ringbuf") as tracer:
        spawn_true(300)
        tracer.stop()
        delivered = sum(1 for _ in tracer)
        stats = tracer.stats()
    assert 0 < delivered < 300
    assert stats.lost == 300 - delivered
    assert set(stats.lost_per_cpu) >= {0}


def test_perf_losses_are_counted_exactly_and_at_once() -> None:
    # The programs count what did not fit; the kernel's LOST records come only with the next
    # record that fits in the same ring, and may never come.
    with rawtrace.trace("vfork", pid=os.getpid(), pages=1, transport="perf") as tracer:
        spawn_true(300)
        tracer.stop()
        delivered = len(list(tracer))
        stats = tracer.stats()
        reader = tracer._reader
        assert isinstance(reader, PerfReader)
        reported = reader.reported_lost_per_cpu()
    assert 0 < delivered < 300
    assert stats.lost == 300 - delivered
    assert all(reported[cpu] <= lost for cpu, lost in stats.lost_per_cpu.items())


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
@pytest.mark.parametrize("transport", TRANSPORTS)
def test_a_signal_flushes_every_event(transport: str, signum: int) -> None:
    options = [f"--pid={os.getpid()}", f"--transport={transport}"]
    tracer = subprocess.Popen(
        [sys.executable, "-m", "rawtrace", "trace", "vfork", *options],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert tracer.stderr is not None
    assert "tracing vfork" in tracer.stderr.readline()
    pids = spawn_true(7)
    tracer.send_signal(signum)  # at once: the events still wait for a watermark or a poll
    out, err = tracer.communicate(timeout=10)
    assert tracer.returncode == 0, err
    assert [row.split()[5] for row in out.splitlines()[1:]] == [f"pid={pid}" for pid in pids]
    assert "7 events, 0 lost" in err


def test_two_tracers_both_see_every_event_and_one_stopping_leaves_the_other() -> None:
    with rawtrace.trace("vfork", pid=os.getpid()) as first:
        with rawtrace.trace("vfork", pid=os.getpid()) as second:
            both = spawn_true(5)
            seen_by_second = [event.arg("pid") for event in second.read(1.0)]
        after = spawn_true(5)  # the second tracer is closed: detached and released
        first.stop()
        seen_by_first = [event.arg("pid") for event in first]
    assert seen_by_second == both
    assert seen_by_first == both + after
