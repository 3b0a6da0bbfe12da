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
from rawtrace.events.catalogue import EventSpec, lookup
from rawtrace.filters.kinds import FilterValues, build_filters, check_pid
from rawtrace.filters.placing import AUTO as AUTO_FILTERS
from rawtrace.filters.placing import FILTERS_IN
from rawtrace.transports.opening import AUTO as AUTO_TRANSPORT
from rawtrace.transports.opening import TRANSPORTS
from rawtrace.transports.perf_reader import DEFAULT_PAGES


@dataclass(frozen=True)
class TracePlan:
    """A trace, as asked: the events, the filters (as the programs compile them), follow, the
    stall threshold, ring pages per CPU, and the attach family, transport and filter placement
    (each "auto" or forced). Make one with `TracePlan.build`, which validates."""

    events: tuple[EventSpec, ...]
    filters: Filters
    follow: int | None = None
    stall_ms: float | None = None
    pages: int = DEFAULT_PAGES
    attach: str = AUTO_ATTACH
    transport: str = AUTO_TRANSPORT
    filters_in: str = AUTO_FILTERS

    @classmethod
    def build(
        cls,
        events: str | Sequence[str] = "vfork",
        *,
        follow: int | None = None,
        stall_ms: float | None = None,
        pages: int = DEFAULT_PAGES,
        attach: str = AUTO_ATTACH,
        transport: str = AUTO_TRANSPORT,
        filters_in: str = AUTO_FILTERS,
        **filters: FilterValues,
    ) -> TracePlan:
        """Check every option; `filters` are the kinds of rawtrace.filters.kinds (pid, tid,
        uid, comm, cgroup, container), each one value or several. Raises RawtraceError naming
        the option and what it accepts: a UsageError, never a TypeError."""
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
        if stall_ms is not None and not any(spec.holds is not None for spec in specs):
            raise UsageError(
                "a stall alarm watches vfork, clone and clone3, and none of them is traced",
                "add vfork (or clone, clone3) to the events",
            )
        return cls(specs, built, follow, stall_ms, pages, attach, transport, filters_in)

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
    """The specs of event names (a list, or one comma-separated string), each named once."""
    names = events.split(",") if isinstance(events, str) else events
    if not isinstance(names, (list, tuple)) or not all(isinstance(n, str) for n in names):
        raise UsageError(
            f"events: event names, as a list or one comma-separated string, not {events!r}",
            "rawtrace trace --list shows them",
        )
    names = [name.strip() for name in names]
    if not any(names):
        raise UsageError("no events to trace", "name at least one (rawtrace trace --list)")
    twice = sorted({name for name in names if names.count(name) > 1})
    if twice:
        raise UsageError(f"events named more than once: {', '.join(twice)}", "name each once")
    try:
        return tuple(lookup(names))
    except RawtraceError as exc:
        raise UsageError(exc.cause, exc.fix) from exc


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
