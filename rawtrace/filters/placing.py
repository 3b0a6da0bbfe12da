"""Where each filter kind runs: compiled into the programs, or on the decoded events in user space
where the running kernel cannot read what the kind compares.

Each kind reads one helper in BPF (its probe, from rawtrace.kernel.feature_probes) and one field of
the event in user space. Both see the same value, taken when the record is sent, so the same events
pass either way; what differs is the traffic: the kernel drops a call before it reaches a ring,
while in user space every call of the traced events is sent, decoded and counted in the tracer's
`delivered` before it is dropped. Kinds combine with AND, so each can run on either side.

The record itself carries these values (the programs call the same helpers to fill it in), so today
the probes pass wherever rawtrace's programs load at all, and only `filters_in="user"` takes the
user-space path; the decision stays here, in one place, for the helper a future filter or record
change makes optional. `--follow` has no user-space form: a tree of processes cannot be rebuilt from
events after the fact, since a child can act before its parent's fork returns."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

from bpf_bytecode.programs.filters import Filters
from rawtrace.errors import KernelFeatureMissing, RawtraceError, reason
from rawtrace.events.event import Event
from rawtrace.filters.kinds import KINDS, FilterKind
from rawtrace.kernel.feature_probes import (
    CURRENT_PID_TGID,
    HASH_MAPS,
    TRACEPOINT_PROGRAMS,
    FeatureProbe,
)

AUTO, KERNEL, USER = "auto", "kernel", "user"
FILTERS_IN = (AUTO, KERNEL, USER)
USER_SPACE = "user space"


# one kind per Filters field: --cgroup and --container both fill `cgroups`
_COMPARED = tuple(k for i, k in enumerate(KINDS) if k.values not in {o.values for o in KINDS[:i]})
FOLLOW_NEEDS = (HASH_MAPS, TRACEPOINT_PROGRAMS, CURRENT_PID_TGID)


@dataclass(frozen=True)
class Place:
    """Where one kind runs, and why there when it is not the kernel."""

    kind: str
    where: str  # "kernel", "user space", or for follow "unavailable"
    why: str | None = None


def place(kind: FilterKind, filters_in: str) -> Place:
    """Where `kind` runs under `filters_in`: auto puts it in the kernel where its helper is
    there, kernel insists (KernelFeatureMissing without the helper), user never asks."""
    if filters_in == USER:
        return Place(kind.name, USER_SPACE, "forced (filters_in=user)")
    missing = _missing((kind.needs,))
    if missing is None:
        return Place(kind.name, KERNEL)
    if filters_in == KERNEL:
        raise KernelFeatureMissing(
            f"cannot filter on {kind.name} in the kernel: {missing}",
            "let rawtrace filter in user space (filters_in=auto)",
        )
    return Place(kind.name, USER_SPACE, missing)


def _missing(needs: Sequence[FeatureProbe]) -> str | None:
    """Why the kernel lacks one of `needs`, or None. Undecided probes (no permission) raise."""
    for probe in needs:
        if not probe.probe():
            return f"no {probe.name} in this kernel: {probe.description}"
    return None


class UserFilter:
    """The kinds applied to decoded events; an event passes when each has one of its values."""

    def __init__(self, checks: Sequence[tuple[FilterKind, frozenset[Any]]] = ()) -> None:
        self.kinds = tuple(kind.name for kind, _ in checks)
        self._checks = [(kind.field, wanted) for kind, wanted in checks]

    def __call__(self, events: list[Event]) -> list[Event]:
        checks = self._checks
        return [e for e in events if all(field(e) in wanted for field, wanted in checks)]


def check_mode(filters_in: str) -> None:
    if filters_in not in FILTERS_IN:
        raise RawtraceError(
            f"unknown filters_in {filters_in!r}", f"choose one of {', '.join(FILTERS_IN)}"
        )


def split_filters(filters: Filters, filters_in: str) -> tuple[Filters, UserFilter]:
    """The filters the programs compile in, and those applied in user space."""
    check_mode(filters_in)
    checks: list[tuple[FilterKind, frozenset[Any]]] = []
    emptied: dict[str, Any] = {}
    for kind in _COMPARED:
        values = getattr(filters, kind.values)
        if values and place(kind, filters_in).where == USER_SPACE:
            checks.append((kind, frozenset(kind.spell(value) for value in values)))
            emptied[kind.values] = ()
    return replace(filters, **emptied), UserFilter(checks)


def report() -> list[dict[str, Any]]:
    """For `rawtrace features`: where each kind runs in auto mode, and why not in the kernel."""
    rows = []
    for kind in _COMPARED:
        try:
            where = place(kind, AUTO)
        except (RawtraceError, OSError) as exc:
            where = Place(kind.name, "unknown", reason(exc))
        rows.append({"kind": kind.name, "where": where.where, "reason": where.why})
    try:
        missing = _missing(FOLLOW_NEEDS)
        follow = (
            Place("follow", KERNEL)
            if missing is None
            else Place("follow", "unavailable", f"{missing}; follow has no user-space form")
        )
    except (RawtraceError, OSError) as exc:
        follow = Place("follow", "unknown", reason(exc))
    return [*rows, {"kind": "follow", "where": follow.where, "reason": follow.why}]
