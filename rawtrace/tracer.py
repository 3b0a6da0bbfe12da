"""The reading side of a trace, and the public `trace()`: a Tracer takes a plan
(rawtrace.plan), has a Session (rawtrace.session) make its kernel side, and turns what the rings
hold into events: read(), iteration, `async for`, run() with callbacks, stats().

The CLI is a thin caller of Tracer.run, so the Python API can do whatever the command line does.
"""

from __future__ import annotations

import threading
import time
from collections.abc import AsyncIterator, Iterator, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Callable

from bpf_bytecode.programs.filters import Filters
from rawtrace.attach.ladder import Choice
from rawtrace.errors import RawtraceError
from rawtrace.events.declaring import EventSpec
from rawtrace.events.decoding import Decoder
from rawtrace.events.event import Event
from rawtrace.events.stalls import StallAlarm
from rawtrace.lifecycle import Lifecycle
from rawtrace.outputs.sinks import ExportStats, Sink, Sinks
from rawtrace.plan import TracePlan, seconds
from rawtrace.session import Session
from rawtrace.transports.opening import RingReader
from rawtrace.transports.waiting import Waiter


@dataclass(frozen=True)
class TraceStats:
    """What a trace delivered and what it lost: per CPU in the rings, and in the probes."""

    delivered: int
    lost_per_cpu: dict[int, int]
    undecodable: int  # records in a ring that were not a known event (should stay 0)
    # Probe hits that never ran the programs (a kretprobe out of instances); None where the
    # kernel does not tell (kprobe PMU before 6.7).
    missed: int | None = 0
    exports: tuple[ExportStats, ...] = ()  # per sink (network destination); final after run()

    @property
    def lost(self) -> int:
        return sum(self.lost_per_cpu.values()) + (self.missed or 0)


class Tracer:
    """Traces events until closed: a context manager that starts on entry and closes on exit.
    Iterate it (`for`, `async for`), call read(timeout), or run() with on_event (each event) or
    on_batch (each read's events) and on_lost callbacks; fileno() nests it in an event loop.

    `plan` is a TracePlan, or events (names, or declarations such as rawtrace.syscall_event's)
    with the options of TracePlan.build, which says what each means (filters, follow, attach,
    transport, pages, stall_ms). Each of `sinks` (rawtrace.outputs.sinks) gets every event read.

    >>> with trace("vfork") as tracer:           # doctest: +SKIP
    ...     for event in tracer:
    ...         print(event.process_id, event.arg("pid"))
    """

    def __init__(
        self,
        plan: TracePlan | str | EventSpec | Sequence[str | EventSpec] = "vfork",
        *,
        on_event: Callable[[Event], object] | None = None,
        on_batch: Callable[[list[Event]], object] | None = None,
        on_lost: Callable[[int, int], object] | None = None,
        sinks: Sequence[Sink] = (),
        **options: Any,
    ) -> None:
        self.plan = _plan_of(plan, options)
        self.on_event = on_event
        self.on_batch = on_batch
        self.on_lost = on_lost  # (cpu, newly lost records), from run()
        self._session = Session(self.plan)
        self._reader: RingReader | None = None
        self._decoder = Decoder()
        self._stalls: StallAlarm | None = None
        self._delivered = 0
        self._stopped = False
        # Held while the rings are drained or released: close() from another thread never
        # pulls a ring from under a drain (it wakes a blocked read through the waiter).
        self._lock = threading.Lock()
        self._waiter: Waiter | None = None
        self._life = Lifecycle()
        self._final: TraceStats | None = None  # stats() after close()
        self._lost_reported: dict[int, int] = {}
        self.sinks = Sinks(sinks)

    @property
    def specs(self) -> tuple[EventSpec, ...]:
        return self.plan.events

    @property
    def attach_choice(self) -> Choice | None:
        """The attach family used, and why those above it failed."""
        return self._session.attach_choice

    @property
    def transport_used(self) -> str | None:
        """What the transport mode chose: perf or ringbuf."""
        return self._session.transport_used

    @property
    def filters(self) -> Filters:
        """The filters as the programs compile them."""
        return self._session.filters

    @property
    def filters_in_user_space(self) -> tuple[str, ...]:
        """The filter kinds applied to the decoded events instead of in the kernel."""
        return self._session.user_filter.kinds

    # -- lifecycle -----------------------------------------------------------------------------

    def start(self) -> Tracer:
        """Load and attach everything; on any failure, release what was made and raise. A
        tracer starts once: a second start(), or one after close(), is refused."""
        self._life.start()
        try:
            self._reader = self._session.open()
            self._decoder = Decoder(self._session.task is not None, self.plan.events)
            watch, stall_ms = self._session.watch, self.plan.stall_ms
            if watch is not None and stall_ms is not None:
                self._stalls = StallAlarm(watch, stall_ms, self._decoder.monotonic_to_wall)
            self._waiter = Waiter(self._reader.fileno())
        except BaseException:
            self.close()
            raise
        return self

    def stop(self) -> None:
        """Detach every program; a read blocked in another thread returns. Events already in
        the rings can still be read."""
        self._life.check_owner()
        self._stopped = True
        with self._lock:  # a read blocked in another thread returns
            if self._waiter is not None:
                self._waiter.wake()
        self._session.detach()

    def close(self) -> None:
        """Detach and release everything; stats() still answers. Idempotent, and safe from
        another thread, where it ends a blocked read(). In a process that inherited the tracer
        across fork(), it only marks it closed: the programs and rings are the parent's."""
        if not self._life.close():
            return
        self.stop()
        self.sinks.close()
        with self._lock:
            if self._reader is not None:
                self._final = self._stats(self._reader)
            self._reader = None
            if self._waiter is not None:
                self._waiter.close()
            self._session.close()

    def __enter__(self) -> Tracer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # -- reading -------------------------------------------------------------------------------

    @property
    def ended(self) -> bool:
        """Whether stop() or close() was called: reads wait no more."""
        return self._stopped or self._life.closed

    @property
    def max_wait(self) -> float:
        """Seconds events can sit in a ring without making fileno() readable."""
        return self._require_reader().max_wait

    def fileno(self) -> int:
        """An fd that turns readable when events are ready, for select, selectors or an event
        loop. Events below a ring's watermark wake nobody: call read(0) at least every
        max_wait seconds too, as `async for` does."""
        return self._require_reader().fileno()

    def read(self, timeout: float | None = None) -> list[Event]:
        """Events that are ready. Like selectors: None waits until some come, 0 only polls,
        a positive timeout waits at most that many seconds. After stop() it never waits, and
        after close() it returns nothing. Threads may read at once: each event goes to one."""
        self._life.check_owner()
        timeout = None if timeout is None else seconds("timeout", timeout)
        if self._reader is None and not self._life.closed:
            self._require_reader()
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            with self._lock:
                if self._reader is None:
                    return []
                events = self._drain(self._reader)
                max_wait = self._reader.max_wait
            if events or self._stopped:
                return events
            left = max_wait if deadline is None else deadline - time.monotonic()
            if left <= 0:
                return events
            assert self._waiter is not None  # made with the reader
            self._waiter.wait(min(left, max_wait))

    def _drain(self, reader: RingReader) -> list[Event]:
        events = [event for batch in reader.drain() for event in self._decoder.decode(batch)]
        self._delivered += len(events)  # what left the rings, user-space filters or not
        if self._stalls is not None:
            events += self._stalls.check()
        # Each CPU has its own ring: merge them into the order the events happened.
        events.sort(key=_timestamp)
        hidden = self.plan.hidden
        if hidden:
            events = [event for event in events if event.event_name not in hidden]
        user_filter = self._session.user_filter
        return self.sinks.send(user_filter(events) if user_filter.kinds else events)

    def __iter__(self) -> Iterator[Event]:
        """Events as they come, until stop() or close(); after stop(), what the rings still
        hold."""
        while True:
            events = self.read()
            if not events and self.ended:
                return
            yield from events

    def __aiter__(self) -> AsyncIterator[Event]:
        """`async for event in tracer`: waits in the running asyncio loop (add_reader plus a
        max_wait timer), never in a thread."""
        from rawtrace.async_reading import events_of  # asyncio costs 50 ms of every start

        return events_of(self)

    def run(self, duration: float | None = None, until: Callable[[], bool] | None = None) -> None:
        """Callback mode: hand each read's events to on_batch (or each event to on_event) and
        new losses to on_lost(cpu, count), until stop() (from a callback, a signal handler or
        another thread), `duration` seconds, or `until()` turns true (checked at least every
        0.1 s); then detach and deliver what the rings still hold."""
        if self.on_event is None and self.on_batch is None:
            raise RawtraceError(
                "run() delivers events to on_event or on_batch", "pass on_event= to trace()"
            )
        deadline = None if duration is None else time.monotonic() + seconds("duration", duration)
        while not self._stopped and not (until is not None and until()):
            left = None if deadline is None else deadline - time.monotonic()
            if left is not None and left <= 0:
                break
            if until is not None:
                left = _UNTIL_CHECK if left is None else min(left, _UNTIL_CHECK)
            self._dispatch(self.read(left))
        self.stop()
        while events := self.read(0):  # what the rings still hold
            self._dispatch(events)
        self._dispatch([])  # the last losses
        self.sinks.close()

    def _dispatch(self, events: list[Event]) -> None:
        if self.on_batch is not None:
            self.on_batch(events)
        elif self.on_event is not None:
            for event in events:
                self.on_event(event)
        if self.on_lost is None or self._reader is None:
            return
        for cpu, lost in self._reader.lost_per_cpu().items():
            new = lost - self._lost_reported.get(cpu, 0)
            if new:
                self._lost_reported[cpu] = lost
                self.on_lost(cpu, new)

    def stats(self) -> TraceStats:
        """What the trace delivered and lost so far; after close(), its final count."""
        self._life.check_owner()
        if self._reader is None and self._final is not None:
            return self._final
        return self._stats(self._require_reader())

    def _stats(self, reader: RingReader) -> TraceStats:
        lost, missed = reader.lost_per_cpu(), self._session.missed()
        undecodable = self._decoder.undecodable
        return TraceStats(self._delivered, lost, undecodable, missed, self.sinks.stats())

    def _require_reader(self) -> RingReader:
        if self._reader is None:
            raise RawtraceError("the tracer is not running", "use it inside `with trace(...)`")
        return self._reader


_UNTIL_CHECK = 0.1  # seconds between checks of run()'s `until`


def _plan_of(
    plan: TracePlan | str | EventSpec | Sequence[str | EventSpec], options: dict[str, Any]
) -> TracePlan:
    """A plan as given, or built from events and TracePlan.build's options."""
    if not isinstance(plan, TracePlan):
        return TracePlan.build(plan, **options)
    if options:
        raise RawtraceError(
            f"options given beside a TracePlan: {', '.join(options)}",
            "set them in TracePlan.build, or pass event names instead of a plan",
        )
    return plan


trace = Tracer
"""`rawtrace.trace(events, ...)`: a Tracer, started when its `with` block is entered."""


def _timestamp(event: Event) -> int:
    return event.timestamp
