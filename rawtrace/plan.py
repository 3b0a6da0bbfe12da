"""What a trace is asked to do, validated once: the plan the CLI and the API both build.

Building a plan needs no root and touches no kernel object: it checks every option, looks the
events up and turns the filters into the values the programs compile in (a cgroup path becomes
its id, read from the cgroup filesystem). A Session (rawtrace.session) makes the kernel side
of a plan; a Tracer (rawtrace.tracer) reads it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from bpf_bytecode.programs.filters import Filters
from rawtrace.attach.ladder import AUTO as AUTO_ATTACH
from rawtrace.attach.ladder import rungs
from rawtrace.errors import RawtraceError
from rawtrace.events.catalogue import HOLDING_CALLS, VFORK_STALL, lookup
from rawtrace.events.declaring import EventSpec
from rawtrace.filters.kinds import FilterValues, build_filters
from rawtrace.filters.placing import AUTO as AUTO_FILTERS
from rawtrace.filters.placing import check_mode
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
        the kinds of rawtrace.filters.kinds (pid, tid,
        uid, comm, cgroup, container), each one value or several. Raises RawtraceError naming
        the option and what it accepts."""
        specs = _resolve(events)
        rungs(attach)  # an unknown mode fails here, before anything is made
        if transport not in TRANSPORTS:
            raise RawtraceError(
                f"unknown transport {transport!r}", f"use one of {', '.join(TRANSPORTS)}"
            )
        built = build_filters(filters)
        check_mode(filters_in)
        if stall_ms is not None and not (stall_ms > 0 and math.isfinite(stall_ms)):
            raise RawtraceError(f"a stall threshold of {stall_ms} ms", "give a positive --stall-ms")
        hidden: frozenset[str] = frozenset()
        if VFORK_STALL in specs:
            stall_ms = DEFAULT_STALL_MS if stall_ms is None else stall_ms
            if not any(spec.holds is not None for spec in specs):
                hidden = frozenset(spec.name for spec in HOLDING_CALLS)
                specs = (*specs, *HOLDING_CALLS)
        elif stall_ms is not None:
            specs = (*specs, VFORK_STALL)
        if not any(spec.holds is not None for spec in specs) and stall_ms is not None:
            raise RawtraceError(
                "a stall alarm watches vfork, clone and clone3, and none of them is traced",
                "add vfork (or clone, clone3, or vfork_stall) to the events",
            )
        return cls(specs, built, follow, stall_ms, pages, attach, transport, filters_in, hidden)

    @property
    def holds(self) -> bool:
        """Whether an event of the plan can hold its parent (vfork, clone, clone3)."""
        return any(spec.holds is not None for spec in self.events)


def _resolve(events: str | EventSpec | Sequence[str | EventSpec]) -> tuple[EventSpec, ...]:
    """The declarations of `events`, each once; two that share an id are refused: their records
    could not be told apart."""
    items = [events] if isinstance(events, (str, EventSpec)) else list(events)
    specs: list[EventSpec] = []
    for item in items:
        for spec in [item] if isinstance(item, EventSpec) else lookup(item):
            if spec not in specs:
                specs.append(spec)
    by_id: dict[int, str] = {}
    for spec in specs:
        other = by_id.setdefault(spec.event_id, spec.name)
        if other != spec.name:
            raise RawtraceError(
                f"events {other!r} and {spec.name!r} share the id {spec.event_id}",
                "trace one of them (a declaration takes its syscall's id)",
            )
    return tuple(specs)
