"""What a trace is asked to do, validated once: the plan the CLI and the API both build.

Building a plan needs no root and touches no kernel object: it checks every option, looks the
events up and turns the filters into the values the programs compile in (a cgroup path becomes
its id, read from the cgroup filesystem). A Session (rawtrace.session) makes the kernel side
of a plan; a Tracer (rawtrace.tracer) reads it.
"""

from __future__ import annotations

import mmap
from collections.abc import Sequence
from dataclasses import dataclass

from bpf_bytecode.programs.filters import Filters
from kernel_compat import online_cpus
from rawtrace.attach.ladder import ATTACH_MODES
from rawtrace.attach.ladder import AUTO as AUTO_ATTACH
from rawtrace.errors import RawtraceError, UsageError
from rawtrace.events.catalogue import HOLDING_CALLS, VFORK_STALL, lookup
from rawtrace.events.declaring import EventSpec
from rawtrace.filters.kinds import FilterValues, build_filters, check_pid
from rawtrace.filters.placing import AUTO as AUTO_FILTERS
from rawtrace.filters.placing import FILTERS_IN
from rawtrace.transports.opening import AUTO as AUTO_TRANSPORT
from rawtrace.transports.opening import TRANSPORTS
from rawtrace.transports.perf_reader import DEFAULT_PAGES

DEFAULT_STALL_MS = 1000.0  # vfork_stall's threshold where none is given


@dataclass(frozen=True)
class TracePlan:
    """A trace, as asked: the events, the filters (as the programs compile them), follow, the
    stall threshold, ring pages per CPU, and the attach family, transport and filter placement
    (each "auto" or forced). Make one with `TracePlan.build`, which validates.

    `hidden` names events traced only because another needs them (the holding calls behind
    vfork_stall): the Tracer does not deliver them."""

    events: tuple[EventSpec, ...]
    filters: Filters
    follow: int | None = None
    stall_ms: float | None = None
    pages: int = DEFAULT_PAGES
    attach: str = AUTO_ATTACH
    transport: str = AUTO_TRANSPORT
    filters_in: str = AUTO_FILTERS
    hidden: frozenset[str] = frozenset()

    @classmethod
    def build(
        cls,
        events: str | EventSpec | Sequence[str | EventSpec] = "vfork",
        *,
        follow: int | None = None,
        stall_ms: float | None = None,
        pages: int = DEFAULT_PAGES,
        attach: str = AUTO_ATTACH,
        transport: str = AUTO_TRANSPORT,
        filters_in: str = AUTO_FILTERS,
        **filters: FilterValues,
    ) -> TracePlan:
        """Check every option; `events` are names of the catalogue's events (a list, or one
        comma-separated string) or declarations (rawtrace.syscall_event, ...); `filters` are
        the kinds of rawtrace.filters.kinds (pid, tid, uid, comm, cgroup, container), each one
        value or several. Raises a UsageError naming the option and what it accepts, never a
        TypeError."""
        specs = event_specs(events)
        _one_of("attach mode", attach, ATTACH_MODES)
        _one_of("transport", transport, TRANSPORTS)
        _one_of("filters_in", filters_in, FILTERS_IN)
        if follow is not None:
            follow = check_pid("--follow", follow)
        _check_pages(pages)
        if stall_ms is not None and not (
            type(stall_ms) in (int, float) and 0 < stall_ms < _STALL_MS_MAX
        ):
            raise UsageError(
                f"stall_ms (--stall-ms) {stall_ms!r} is no threshold",
                f"give a number of milliseconds above 0 and below {_STALL_MS_MAX:.0e}",
            )
        built = build_filters(filters)
        hidden: frozenset[str] = frozenset()
        if VFORK_STALL in specs:
            stall_ms = DEFAULT_STALL_MS if stall_ms is None else stall_ms
            if not any(spec.holds is not None for spec in specs):
                hidden = frozenset(spec.name for spec in HOLDING_CALLS)
                specs = (*specs, *HOLDING_CALLS)
        elif stall_ms is not None:
            specs = (*specs, VFORK_STALL)
        if not any(spec.holds is not None for spec in specs) and stall_ms is not None:
            raise UsageError(
                "a stall alarm watches vfork, clone and clone3, and none of them is traced",
                "add vfork (or clone, clone3, or vfork_stall) to the events",
            )
        return cls(specs, built, follow, stall_ms, pages, attach, transport, filters_in, hidden)

    @property
    def holds(self) -> bool:
        """Whether an event of the plan can hold its parent (vfork, clone, clone3)."""
        return any(spec.holds is not None for spec in self.events)


# The alarm's threshold in ns is a u64 event argument
_STALL_MS_MAX = float(1 << 63) / 1_000_000
# All the rings together: the ring buffer's size is a u32 and a power of two, and more than
# a GiB of locked memory is no tracer's business
RING_BYTES_MAX = 1 << 30


def event_specs(events: object) -> tuple[EventSpec, ...]:
    """The declarations of `events` (names, as a list or one comma-separated string, or
    declarations), each named once; two that share an id are refused: their records could not
    be told apart."""
    items = events.split(",") if isinstance(events, str) else events
    if isinstance(items, EventSpec):
        items = [items]
    if not isinstance(items, (list, tuple)) or not all(
        isinstance(item, (str, EventSpec)) for item in items
    ):
        raise UsageError(
            f"events: event names or declarations, as a list or one comma-separated string, "
            f"not {events!r}",
            "rawtrace trace --list shows them",
        )
    names = [item.strip() if isinstance(item, str) else item.name for item in items]
    if not any(names):
        raise UsageError("no events to trace", "name at least one (rawtrace trace --list)")
    twice = sorted({name for name in names if names.count(name) > 1})
    if twice:
        raise UsageError(f"events named more than once: {', '.join(twice)}", "name each once")
    specs: list[EventSpec] = []
    for item, name in zip(items, names):
        try:
            specs += [item] if isinstance(item, EventSpec) else lookup(name)
        except RawtraceError as exc:
            raise UsageError(exc.cause, exc.fix) from exc
    by_id: dict[int, str] = {}
    for spec in specs:
        other = by_id.setdefault(spec.event_id, spec.name)
        if other != spec.name:
            raise UsageError(
                f"events {other!r} and {spec.name!r} share the id {spec.event_id}",
                "trace one of them (a declaration takes its syscall's id)",
            )
    return tuple(specs)


def seconds(option: str, value: object) -> float:
    """`value` as a number of seconds (0 or more, inf for ever); a UsageError otherwise."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value >= 0:
        raise UsageError(f"{option} {value!r} is no number of seconds", "give 0 or more")
    return float(value)


def _one_of(option: str, value: object, accepted: Sequence[str]) -> None:
    if not isinstance(value, str) or value not in accepted:
        raise UsageError(f"unknown {option} {value!r}", f"choose one of {', '.join(accepted)}")


def _check_pages(pages: object) -> None:
    cpus = len(online_cpus())
    most = max(RING_BYTES_MAX // (cpus * mmap.PAGESIZE), 1)
    if type(pages) is not int or not 0 < pages <= most or pages & (pages - 1):
        raise UsageError(
            f"pages {pages!r} is no ring size",
            f"give a power of two from 1 to {most} ({cpus} CPUs of {mmap.PAGESIZE}-byte pages, "
            f"{RING_BYTES_MAX >> 20} MiB in all at most)",
        )
