"""The programs of one syscall-fed event: the maps they share (start times, the record's tail)
and the loader that builds and loads them for whichever attach family asks (the family supplies
the code that reads its context; see rawtrace.attach.SyscallPrograms)."""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import ExitStack
from dataclasses import dataclass

from bpf_bytecode import Item
from bpf_bytecode.programs.capture import SyscallArgs
from bpf_bytecode.programs.filters import Filters
from bpf_bytecode.programs.output import Output
from bpf_bytecode.programs.record import SYSCALL_RECORD
from bpf_bytecode.programs.syscall import Tail, syscall_enter, syscall_entry_event, syscall_exit
from bpf_bytecode.programs.task import TaskLayout
from bpf_bytecode.programs.vfork import Hold, VforkMaps
from rawtrace.attach import SyscallPrograms
from rawtrace.events.declaring import EventSpec
from rawtrace.events.stand_ins import Feeding
from rawtrace.kernel.bpf import MapType
from rawtrace.kernel.maps import Map

START_TIMES_ENTRIES = 16384  # threads inside a traced call at once; LRU evicts missed exits
# An event with a tail keeps it in its start-time map: fewer entries for bigger tails (execve's
# strings), at least enough for the execs a machine runs at once.
TAILS_BUDGET = 8 << 20
TAILS_ENTRIES_MIN = 1024


def shared_start_times(resources: ExitStack) -> Map:
    """The start-time map of the events without a tail, owned by `resources`."""
    return resources.enter_context(
        Map.create(
            MapType.LRU_HASH,
            key_size=8,
            value_size=8,
            max_entries=START_TIMES_ENTRIES,
            name="rawtrace_starts",
        )
    )


@dataclass(frozen=True)
class EventMaps:
    """The maps one event's programs share: start times (with the tail noted at entry), and
    for an event with a tail the per-CPU array its record is built in."""

    start_times: Map
    tail: Tail | None


def event_maps(
    spec: EventSpec, start_times: Map, resources: ExitStack, vfork: VforkMaps | None
) -> EventMaps:
    """Events without a tail share `start_times` (a thread is in one syscall at a time); each
    event with one gets maps sized for it, owned by `resources`. A call that holds its parent
    notes holds in the `vfork` maps."""
    if spec.capture is None:
        return EventMaps(start_times, None)
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
    if spec.syscall_feed.at_entry:
        return EventMaps(start_times, tail)  # no start to note: the entry sends the record
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
    return EventMaps(own_start_times, tail)


class EventPrograms(SyscallPrograms):
    """One syscall event's programs, for whichever family asks: they time the call, filter,
    capture the args and send the record. `feeding` is the syscall they hook: the event's own,
    or a clone call standing in for it (stand_ins.py)."""

    def __init__(
        self,
        spec: EventSpec,
        feeding: Feeding,
        maps: EventMaps,
        output: Output,
        filters: Filters,
        task: TaskLayout | None,
        resources: ExitStack,
    ) -> None:
        own = feeding.syscall == spec.syscall_feed.syscall
        prefix = spec.name if own else f"{spec.name}_{feeding.syscall}"
        super().__init__(prefix, resources, at_entry=spec.syscall_feed.at_entry)
        self.spec = spec
        self.feeding = feeding
        self.start_times = maps.start_times
        self.tail = maps.tail
        self.output = output
        self.filters = filters
        self.task = task

    def enter_code(self, match: Sequence[Item], args: SyscallArgs) -> Sequence[Item]:
        if self.at_entry and self.tail is not None:
            code = syscall_entry_event(
                match=match,
                args=args,
                output=self.output,
                event_id=self.feeding.record_id,
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
                only=self.feeding.only,
            )
        return code

    def exit_code(self, load_ret: Sequence[Item]) -> Sequence[Item]:
        return syscall_exit(
            load_ret=load_ret,
            start_times_fd=self.start_times.fileno(),
            output=self.output,
            event_id=self.feeding.record_id,
            skip_child_return=self.spec.syscall_feed.skip_child_return,
            filters=self.filters,
            task=self.task,
            tail=self.tail,
            entry_required=self.feeding.only is not None,
        )
