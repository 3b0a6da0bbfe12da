"""The kernel side of one trace plan: every map, ring, program and attachment it needs, made in
order and owned until closed.

    capabilities and memlock → tracefs, BTF task layout → filters placed (kernel or user space)
    → follow map → start-time maps, vfork watch → rings (before any program can run)
    → tracepoint-fed events, exec facts → syscall events through the first attach family
    that works

Programs and maps live in `resources`, attachments in `links`: links close first (detach),
then the rest, on every path, failures included.
"""

from __future__ import annotations

from contextlib import ExitStack
from dataclasses import replace

from bpf_bytecode.programs.task import TaskLayout
from kernel_compat import KernelFactError
from rawtrace.attach import Link, SyscallFamily, detach_all, total_missed
from rawtrace.attach.ladder import Choice, climb
from rawtrace.errors import PermissionMissing
from rawtrace.events.event_programs import EventPrograms, event_maps, shared_start_times
from rawtrace.events.stand_ins import feedings
from rawtrace.events.tracepoint_fed import (
    attach_exec_facts,
    attach_kprobe_fed,
    attach_tracepoint_fed,
    syscall_fed,
)
from rawtrace.events.vfork_watch import VforkWatch
from rawtrace.filters.following import follow_tree
from rawtrace.filters.placing import UserFilter, split_filters
from rawtrace.kernel.fd_limit import lift_fd_limit, out_of_fds
from rawtrace.kernel.privileges import lift_memlock_limit, require_tracing_capabilities
from rawtrace.kernel.task_layout import task_layout
from rawtrace.kernel.tracefs_mount import ensure_tracefs
from rawtrace.plan import TracePlan
from rawtrace.transports.opening import RingReader, open_transport


class Session:
    """Opens the kernel side of `plan` (open()), detaches it (detach()) and releases it
    (close()). What open() chose is kept: the attach family and why those above it failed,
    the transport, the filter kinds left to user space."""

    def __init__(self, plan: TracePlan) -> None:
        self.plan = plan
        self.resources = ExitStack()  # maps, rings, programs, fds
        self.links = ExitStack()  # attachments: closed first
        self.attach_choice: Choice | None = None
        self.transport_used: str | None = None
        self.filters = plan.filters  # as the programs compile them, once open() placed them
        self.user_filter = UserFilter()  # the kinds the kernel cannot compare here
        self.task: TaskLayout | None = None  # None: no BTF, no task context in the records
        self.watch: VforkWatch | None = None  # the vfork holds, for a plan with such events
        self._attached: list[Link] = []
        self._missed: int | None = 0

    def open(self) -> RingReader:
        """Make and attach everything; the reader of the rings. On failure, release what was
        made and raise."""
        try:
            return self._open()
        except BaseException as exc:
            self.close()
            short = out_of_fds(exc)  # whatever failed, the cause is the fd limit
            if short is not None:
                raise short from exc
            if isinstance(exc, KernelFactError) and isinstance(exc.__cause__, PermissionError):
                # capabilities enough for bpf() but not for tracefs or /sys files
                raise PermissionMissing(
                    str(exc), "run rawtrace as root, or give its user read access there"
                ) from exc
            raise

    def _open(self) -> RingReader:
        plan = self.plan
        require_tracing_capabilities()
        lift_memlock_limit()
        lift_fd_limit()
        tracefs = ensure_tracefs()
        self.task = task_layout()
        filters, self.user_filter = split_filters(plan.filters, plan.filters_in)
        if plan.follow is not None:
            followed = follow_tree(plan.follow, tracefs, self.resources, self.links)
            filters = replace(filters, followed_fd=followed.fileno())
        self.filters = filters
        start_times = shared_start_times(self.resources)
        if plan.holds:
            self.watch = VforkWatch(self.resources)
            self.links.callback(detach_all, self.watch.attach_tracepoints(tracefs))
        vfork_maps = self.watch.maps if self.watch is not None else None
        # Which syscalls feed each event is known before any is attached: an event this
        # architecture cannot trace is refused once, not by every rung of the ladder.
        fed = [(spec, feedings(spec)) for spec in syscall_fed(plan.events, self.task)]
        maps = [
            (spec, feeds, event_maps(spec, start_times, self.resources, vfork_maps))
            for spec, feeds in fed
        ]
        # The rings exist before any program runs, so the first event already has a place.
        transport = open_transport(plan.transport, self.resources, plan.pages)
        self.transport_used = transport.name
        attach_tracepoint_fed(
            plan.events, self.task, tracefs, transport.output, filters, self.resources, self.links
        )
        attach_exec_facts(
            [(s, e) for s, _, e in maps], self.task, tracefs, self.resources, self.links
        )
        attach_kprobe_fed(
            plan.events, self.task, transport.output, filters, self.resources, self.links
        )

        def attach(family: SyscallFamily) -> None:
            # One attempt: what a failed family made is released before the next is tried.
            with ExitStack() as programs, ExitStack() as links:
                # The watchers go on first and come off last, so that no vfork event of the
                # trace misses its child's release.
                watchers = (
                    [] if self.watch is None else self.watch.attach_releases(family, programs)
                )
                links.callback(detach_all, watchers)
                attached = []
                for spec, feeds, event in maps:
                    for feeding in feeds:
                        loader = EventPrograms(
                            spec, feeding, event, transport.output, filters, self.task, programs
                        )
                        attached.append(family.attach_syscall(feeding.syscall, loader))
                        links.callback(attached[-1].close)
                self.resources.enter_context(programs.pop_all())
                links.pop_all()
                self.links.callback(detach_all, watchers)
                self.links.callback(detach_all, attached)
                self._attached = attached

        self.attach_choice = climb(plan.attach, tracefs, attach)
        return transport.reader

    def missed(self) -> int | None:
        """Probe hits that never ran the programs, as of the last check while attached."""
        # Only while attached: a tracefs probe's counts go with the probe.
        if self._attached:
            self._missed = total_missed(link.missed() for link in self._attached)
        return self._missed

    def detach(self) -> None:
        """Detach every program; the rings stay readable."""
        self.missed()
        self._attached = []
        self.links.close()

    def close(self) -> None:
        """Detach and release everything. Idempotent."""
        self.detach()
        self.resources.close()
