"""Which syscalls feed an event on this machine: its own, or where the architecture has none
(arm64, riscv64: no fork, no vfork) the clone calls that do its work, with the flags check at
their entry that picks the calls the event counts.

A stand-in's records carry the event's id with the Tracee id of the call that fed them in the
upper half (`record_id`), so that the decoder names the real call in the event's `syscall`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass

from bpf_bytecode.programs.capture import CloneFlags
from kernel_compat import SyscallTable, syscall_table
from rawtrace.errors import KernelFeatureMissing
from rawtrace.events.catalogue import CATALOGUE
from rawtrace.events.declaring import EventSpec, SyscallFeed

_TRACEE_IDS = syscall_table("x86_64")  # as in the catalogue: Tracee's ids are x86_64's numbers
_FEEDER_SHIFT = 16  # event ids are below 2**16; the feeding call's id goes above


@dataclass(frozen=True)
class Feeding:
    """One syscall that feeds an event: its programs send `record_id`, and count only the
    calls `only` says (None: all)."""

    syscall: str
    record_id: int
    only: CloneFlags | None = None


def feedings(spec: EventSpec, table: SyscallTable | None = None) -> tuple[Feeding, ...]:
    """The syscalls that feed `spec` on `table`'s architecture (default: this one's); an event
    that nothing can feed there is refused."""
    table = table or syscall_table()
    feed = spec.syscall_feed
    syscall = feed.syscall
    if syscall not in table.absent:
        return (Feeding(syscall, spec.event_id),)
    stand_in = feed.stand_in
    callers = table.done_by.get(syscall, ())
    if stand_in is None or not callers:
        raise KernelFeatureMissing(
            f"event {spec.name} cannot be traced here: {table.absent_reason(syscall)}",
            "trace the calls that do its work instead (clone, clone3)",
        )
    return tuple(
        Feeding(
            caller,
            spec.event_id | _TRACEE_IDS.number(caller) << _FEEDER_SHIFT,
            dataclasses.replace(stand_in, in_struct=caller == "clone3"),
        )
        for caller in callers
    )


def stand_in_records(table: SyscallTable | None = None) -> Mapping[int, tuple[EventSpec, str]]:
    """The record ids of the stand-ins on this machine: the event each belongs to, and the
    call that fed it."""
    table = table or syscall_table()
    return {
        feeding.record_id: (spec, feeding.syscall)
        for spec in CATALOGUE.values()
        if isinstance(spec.feed, SyscallFeed)
        and spec.feed.syscall in table.absent
        and spec.feed.stand_in is not None
        and table.done_by.get(spec.feed.syscall)
        for feeding in feedings(spec, table)
    }
