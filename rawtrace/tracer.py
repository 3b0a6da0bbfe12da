"""A trace from start to finish: plan, load, attach, read, decode; and the public `trace()`.

The CLI is built on this module and nothing else of the pipeline, so the Python API can do
whatever the command line does.
"""

from __future__ import annotations

import contextlib
import os
import select
import threading
import time
from collections.abc import AsyncIterator, Iterator, Sequence
from contextlib import ExitStack
from dataclasses import dataclass, replace
from types import TracebackType
from typing import Callable

from bpf_bytecode import Item
from bpf_bytecode.programs.capture import SyscallArgs
from bpf_bytecode.programs.filters import Filters
from bpf_bytecode.programs.output import Output
from bpf_bytecode.programs.record import SYSCALL_RECORD
from bpf_bytecode.programs.syscall import Tail, syscall_enter, syscall_entry_event, syscall_exit
from bpf_bytecode.programs.task import TaskLayout
from bpf_bytecode.programs.vfork import Hold, VforkMaps
from rawtrace.attach import Link, SyscallFamily, detach_all, total_missed
from rawtrace.attach.ladder import AUTO, Choice, climb, rungs
from rawtrace.errors import RawtraceError
from rawtrace.events.catalogue import EventSpec, lookup
from rawtrace.events.decoding import Decoder
from rawtrace.events.event import Event
from rawtrace.events.stalls import StallAlarm
from rawtrace.events.tracepoint_fed import attach_tracepoint_fed, syscall_fed
from rawtrace.events.vfork_watch import VforkWatch
from rawtrace.filters.building import Cgroups, Ints, Strs, build_filters
from rawtrace.filters.following import follow_tree
from rawtrace.filters.placing import AUTO as AUTO_FILTERS
from rawtrace.filters.placing import UserFilter, check_mode, split_filters
from rawtrace.kernel.bpf import AttachType, MapType, ProgType
from rawtrace.kernel.loading import OwnedPrograms, Program
from rawtrace.kernel.maps import Map
from rawtrace.kernel.privileges import lift_memlock_limit, require_tracing_capabilities
from rawtrace.kernel.task_layout import task_layout
from rawtrace.kernel.tracefs_mount import ensure_tracefs
from rawtrace.transports.opening import AUTO as AUTO_TRANSPORT
from rawtrace.transports.opening import RingReader, open_transport
from rawtrace.transports.perf_reader import DEFAULT_PAGES

START_TIMES_ENTRIES = 16384  # threads inside a traced call at once; LRU evicts missed exits
# An event with a tail keeps it in its start-time map: fewer entries for bigger tails (execve's
# strings), at least enough for the execs a machine runs at once.
TAILS_BUDGET = 8 << 20
TAILS_ENTRIES_MIN = 1024


@dataclass(frozen=True)
class TraceStats:
    """What a trace delivered and what it lost: per CPU in the rings, and in the probes."""

    delivered: int
    lost_per_cpu: dict[int, int]
    undecodable: int  # records in a ring that were not a known event (should stay 0)
    # Probe hits that never ran the programs (a kretprobe out of instances); None where the
    # kernel does not tell (kprobe PMU before 6.7).
    missed: int | None = 0

    @property
    def lost(self) -> int:
        return sum(self.lost_per_cpu.values()) + (self.missed or 0)


class Tracer:
    """Traces events until closed: a context manager that starts on entry and closes on exit.
    Iterate it (`for`, `async for`), call read(timeout), or run() with on_event/on_lost
    callbacks; fileno() nests it in another event loop.

    `pid`, `tid`, `uid`, `comm`, `cgroup` (a path or an id) and `container` (an id prefix)
    filter in the kernel: each takes one value or several (any of them matches), and kinds
    combine (all must match). `follow` traces a process and every descendant it creates
    after the start. `filters_in="user"` applies the other filters to the decoded events
    instead, as "auto" does for a kind whose helper the kernel lacks, where "kernel" raises
    (see rawtrace.filters.placing). `attach` forces an attach family (see
    rawtrace.attach.ladder); by default the first that works is used. `transport` forces perf
    rings or the BPF ring buffer (see rawtrace.transports.opening). `pages` sizes each ring.

    >>> with trace("vfork") as tracer:           # doctest: +SKIP
    ...     for event in tracer:
    ...         print(event.process_id, event.arg("pid"))
    """

    def __init__(
        self,
        events: str | Sequence[str] = "vfork",
        *,
        pid: Ints = None,
        tid: Ints = None,
        uid: Ints = None,
        comm: Strs = None,
        cgroup: Cgroups = None,
        container: Strs = None,
        follow: int | None = None,
        stall_ms: float | None = None,
        pages: int = DEFAULT_PAGES,
        attach: str = AUTO,
        transport: str = AUTO_TRANSPORT,
        filters_in: str = AUTO_FILTERS,
        on_event: Callable[[Event], object] | None = None,
        on_lost: Callable[[int, int], object] | None = None,
    ) -> None:
        self.specs = lookup(events if isinstance(events, str) else list(events))
        rungs(attach)  # an unknown mode fails here, before anything is made
        self.attach_mode = attach
        self.attach_choice: Choice | None = None  # the family used, and why those above failed
        self.filters = build_filters(
            pid=pid, tid=tid, uid=uid, comm=comm, cgroup=cgroup, container=container
        )
        check_mode(filters_in)
        self.filters_in = filters_in  # auto, kernel or user
        self.filters_in_user_space: tuple[str, ...] = ()  # the kinds filtered after decoding
        self._user_filter = UserFilter()
        self.follow = follow
        if stall_ms is not None and stall_ms <= 0:
            raise RawtraceError(f"a stall threshold of {stall_ms} ms", "give a positive --stall-ms")
        if stall_ms is not None and not any(spec.holds is not None for spec in self.specs):
            raise RawtraceError(
                "a stall alarm watches vfork, clone and clone3, and none of them is traced",
                "add vfork (or clone, clone3) to the events",
            )
        self.stall_ms = stall_ms
        self._stalls: StallAlarm | None = None
        self.pages = pages
        self.on_event = on_event
        self.on_lost = on_lost  # (cpu, newly lost records), from run()
        self.transport_mode = transport  # auto, perf or ringbuf (see rawtrace.transports.opening)
        self.transport_used: str | None = None  # what auto chose
        self._resources = ExitStack()
        self._links = ExitStack()
        self._attached: list[Link] = []
        self._missed: int | None = 0
        self._reader: RingReader | None = None
        self._decoder = Decoder()
        self._delivered = 0
        self._stopped = False
        self._closed = False
        # Held while the rings are drained or released, so that close() from another thread
        # never pulls a ring from under a drain; it wakes a blocked read through _wake_write.
        self._lock = threading.Lock()
        self._poller = select.poll()
        self._wake_read, self._wake_write = -1, -1
        self._lost_reported: dict[int, int] = {}

    # -- lifecycle -----------------------------------------------------------------------------

    def start(self) -> Tracer:
        """Load and attach everything; on any failure, release what was made and raise."""
        try:
            self._start()
        except BaseException:
            self.close()
            raise
        return self

    def _start(self) -> None:
        require_tracing_capabilities()
        lift_memlock_limit()
        tracefs = ensure_tracefs()
        task = task_layout()
        self._decoder = Decoder(task_context=task is not None)
        self.filters, self._user_filter = split_filters(self.filters, self.filters_in)
        self.filters_in_user_space = self._user_filter.kinds
        if self.follow is not None:
            followed = follow_tree(self.follow, tracefs, self._resources, self._links)
            self.filters = replace(self.filters, followed_fd=followed.fileno())
        start_times = self._resources.enter_context(
            Map.create(
                MapType.LRU_HASH,
                key_size=8,
                value_size=8,
                max_entries=START_TIMES_ENTRIES,
                name="rawtrace_starts",
            )
        )
        watch = None
        if any(spec.holds is not None for spec in self.specs):
            watch = VforkWatch(self._resources)
            self._links.callback(detach_all, watch.attach_tracepoints(tracefs))
            if self.stall_ms is not None:
                self._stalls = StallAlarm(watch, self.stall_ms, self._decoder.monotonic_to_wall)
        vfork_maps = watch.maps if watch is not None else None
        event_maps = [
            (spec, _event_maps(spec, start_times, self._resources, vfork_maps))
            for spec in syscall_fed(self.specs, task)
        ]
        # The rings exist before any program runs, so the first event already has a place.
        transport = open_transport(self.transport_mode, self._resources, self.pages)
        self.transport_used = transport.name
        self._reader = transport.reader
        self._wake_read, self._wake_write = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        self._resources.callback(os.close, self._wake_read)
        self._resources.callback(os.close, self._wake_write)
        self._poller.register(self._reader.fileno(), select.POLLIN)
        self._poller.register(self._wake_read, select.POLLIN)
        attach_tracepoint_fed(
            self.specs, task, tracefs, transport.output, self.filters, self._resources, self._links
        )

        def attach(family: SyscallFamily) -> None:
            # One attempt: what a failed family made is released before the next is tried.
            with ExitStack() as programs, ExitStack() as links:
                # The watchers go on first and come off last, so that no vfork event of the
                # trace misses its child's release.
                watchers = [] if watch is None else watch.attach_releases(family, programs)
                links.callback(detach_all, watchers)
                attached = []
                for spec, maps in event_maps:
                    loader = _SyscallProgramLoader(
                        spec, maps, transport.output, self.filters, task, programs
                    )
                    link = family.attach_syscall(spec.feed.syscall, loader)
                    links.callback(link.close)
                    attached.append(link)
                self._resources.enter_context(programs.pop_all())
                links.pop_all()
                self._links.callback(detach_all, watchers)
                self._links.callback(detach_all, attached)
                self._attached = attached

        self.attach_choice = climb(self.attach_mode, tracefs, attach)

    def stop(self) -> None:
        """Detach every program; a read blocked in another thread returns. Events already in
        the rings can still be read."""
        self._stopped = True
        self._wake()
        self._count_missed()
        self._attached = []
        self._links.close()

    def close(self) -> None:
        """Detach and release everything. Idempotent, and safe from another thread, where it
        ends a blocked read() or iteration."""
        self.stop()
        with self._lock:
            self._closed = True
            self._reader = None
            self._wake_read, self._wake_write = -1, -1
            self._resources.close()

    def _wake(self) -> None:
        with self._lock:
            if self._wake_write >= 0:
                with contextlib.suppress(BlockingIOError):  # a wakeup is already pending
                    os.write(self._wake_write, b"\0")

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
        after close() it returns nothing."""
        if self._reader is None and not self._closed:
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
            self._wait(min(left, max_wait))

    def _wait(self, seconds: float) -> None:
        for fd, _ in self._poller.poll(seconds * 1000):
            if fd == self._wake_read:
                with contextlib.suppress(BlockingIOError):
                    os.read(fd, 64)

    def _drain(self, reader: RingReader) -> list[Event]:
        events = [event for batch in reader.drain() for event in self._decoder.decode(batch)]
        self._delivered += len(events)  # what left the rings, user-space filters or not
        if self._stalls is not None:
            events += self._stalls.check()
        # Each CPU has its own ring: merge them into the order the events happened.
        events.sort(key=_timestamp)
        return self._user_filter(events) if self.filters_in_user_space else events

    def __iter__(self) -> Iterator[Event]:
        """Events as they come, until stop() or close(); after stop(), what the rings still
        hold."""
        while True:
            events = self.read()
            if not events and (self._stopped or self._closed):
                return
            yield from events

    async def __aiter__(self) -> AsyncIterator[Event]:
        """`async for event in tracer`: waits in the running asyncio loop (add_reader plus a
        max_wait timer), never in a thread."""
        import asyncio  # here: it costs 50 ms of every start, and only this method needs it

        loop = asyncio.get_running_loop()
        while True:
            events = self.read(0)
            for event in events:
                yield event
            if events:
                continue
            if self._stopped or self._closed:
                return
            ready = asyncio.Event()
            fd = self.fileno()
            loop.add_reader(fd, ready.set)
            try:
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(ready.wait(), self.max_wait)
            finally:
                loop.remove_reader(fd)

    def run(self, duration: float | None = None) -> None:
        """Callback mode: hand each event to on_event and new losses to on_lost(cpu, count),
        until stop() (from a callback, a signal handler or another thread) or `duration`
        seconds; then detach and deliver what the rings still hold."""
        if self.on_event is None:
            raise RawtraceError("run() delivers events to on_event", "pass on_event= to trace()")
        deadline = None if duration is None else time.monotonic() + duration
        while not self._stopped:
            left = None if deadline is None else deadline - time.monotonic()
            if left is not None and left <= 0:
                break
            self._dispatch(self.read(left))
        self.stop()
        self._dispatch(self.read(0))

    def _dispatch(self, events: list[Event]) -> None:
        assert self.on_event is not None
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
        reader = self._require_reader()
        self._count_missed()
        return TraceStats(
            self._delivered, reader.lost_per_cpu(), self._decoder.undecodable, self._missed
        )

    def _count_missed(self) -> None:
        # Only while attached: a tracefs probe's counts go with the probe.
        if self._attached:
            self._missed = total_missed(link.missed() for link in self._attached)

    def _require_reader(self) -> RingReader:
        if self._reader is None:
            raise RawtraceError("the tracer is not running", "use it inside `with trace(...)`")
        return self._reader


@dataclass(frozen=True)
class _EventMaps:
    """The maps one event's programs share: start times (with the tail noted at entry), and
    for an event with a tail the per-CPU array its record is built in."""

    start_times: Map
    tail: Tail | None


def _event_maps(
    spec: EventSpec, start_times: Map, resources: ExitStack, vfork: VforkMaps | None
) -> _EventMaps:
    """Events without a tail share `start_times` (a thread is in one syscall at a time); each
    event with one gets maps sized for it, owned by `resources`. A call that holds its parent
    notes holds in the `vfork` maps."""
    if spec.capture is None:
        return _EventMaps(start_times, None)
    hold = None
    if spec.holds is not None and vfork is not None:
        hold = Hold(vfork, spec.event_id, spec.holds)
    scratch = resources.enter_context(
        Map.create(
            MapType.PERCPU_ARRAY,
            key_size=4,
            value_size=SYSCALL_RECORD.size + spec.tail_size,
            max_entries=1,
            name=f"{spec.name}_record"[:15],
        )
    )
    tail = Tail(spec.capture, scratch.fileno(), hold)
    if spec.feed.at_entry:
        return _EventMaps(start_times, tail)  # no start to note: the entry sends the record
    value_size = 8 + spec.capture.size
    entries = min(START_TIMES_ENTRIES, max(TAILS_ENTRIES_MIN, TAILS_BUDGET // value_size))
    own_start_times = resources.enter_context(
        Map.create(
            MapType.LRU_HASH,
            key_size=8,
            value_size=value_size,
            max_entries=entries,
            name=f"{spec.name}_starts"[:15],
        )
    )
    return _EventMaps(own_start_times, tail)


class _SyscallProgramLoader:
    """Loads one syscall event's programs for whichever family asks (see attach.SyscallPrograms);
    the programs are owned by the tracer's resources."""

    def __init__(
        self,
        spec: EventSpec,
        maps: _EventMaps,
        output: Output,
        filters: Filters,
        task: TaskLayout | None,
        resources: ExitStack,
    ) -> None:
        self.spec = spec
        self.start_times = maps.start_times
        self.tail = maps.tail
        self.output = output
        self.filters = filters
        self.task = task
        self.programs = OwnedPrograms(spec.name, resources)
        self.at_entry = spec.feed.at_entry

    def enter(
        self,
        prog_type: ProgType,
        match: Sequence[Item] = (),
        *,
        args: SyscallArgs,
        expected_attach_type: AttachType = AttachType.NONE,
        attach_btf_id: int = 0,
    ) -> Program:
        if self.at_entry and self.tail is not None:
            code = syscall_entry_event(
                match=match,
                args=args,
                output=self.output,
                event_id=self.spec.event_id,
                filters=self.filters,
                task=self.task,
                tail=self.tail,
            )
        else:
            code = syscall_enter(
                match=match,
                start_times_fd=self.start_times.fileno(),
                filters=self.filters,
                args=args,
                tail=self.tail,
            )
        return self.programs.load("enter", prog_type, code, expected_attach_type, attach_btf_id)

    def exit(
        self,
        prog_type: ProgType,
        load_ret: Sequence[Item],
        *,
        expected_attach_type: AttachType = AttachType.NONE,
        attach_btf_id: int = 0,
    ) -> Program:
        code = syscall_exit(
            load_ret=load_ret,
            start_times_fd=self.start_times.fileno(),
            output=self.output,
            event_id=self.spec.event_id,
            skip_child_return=self.spec.feed.skip_child_return,
            filters=self.filters,
            task=self.task,
            tail=self.tail,
        )
        return self.programs.load("exit", prog_type, code, expected_attach_type, attach_btf_id)


trace = Tracer
"""`rawtrace.trace(events, ...)`: a Tracer, started when its `with` block is entered."""


def _timestamp(event: Event) -> int:
    return event.timestamp
