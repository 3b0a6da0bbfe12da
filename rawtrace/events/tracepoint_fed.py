"""Events that a kernel tracepoint feeds (EventSpec.tracepoint), whatever the syscall family:
their programs read the task through BTF, so where the kernel has none the event's syscall
feed serves instead, through the family like any syscall event.

    exit                  sched:sched_process_exit    process_exit.py     (BTF, else exit_group)
    sched_process_exec    sched:sched_process_exec    exec_facts.py       (argv needs BTF)

Beside them, the exec events' records take their facts from sched:sched_process_exec
(exec_facts.py): attach_exec_facts.

The follow filter still finds an exiting process: follow.py forgets a task only when it is
freed, after its exit.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import ExitStack
from pathlib import Path
from typing import Callable

from bpf_bytecode.programs.capture import ArgsInContext, Capture, ExecStrings
from bpf_bytecode.programs.exec_facts import ExecRecord, exec_event, fix_exec_records
from bpf_bytecode.programs.filters import Filters
from bpf_bytecode.programs.output import Output
from bpf_bytecode.programs.process_exit import (
    REPORTED_KEY_SIZE,
    REPORTED_VALUE_SIZE,
    GroupDeadField,
    LastThread,
    ProcessEnd,
    process_exit,
)
from bpf_bytecode.programs.record import SYSCALL_RECORD
from bpf_bytecode.programs.syscall import Tail, syscall_entry_event
from bpf_bytecode.programs.task import TaskLayout
from bpf_bytecode.programs.tracepoint_copy import tracepoint_copy
from kernel_compat import TracepointFormat, read_tracepoint_format
from kernel_compat.arch import pt_regs_layout
from rawtrace.attach.kprobe import KprobePmu
from rawtrace.attach.tracepoint import attach_tracepoint
from rawtrace.errors import KernelFeatureMissing
from rawtrace.events.declaring import EventSpec, KprobeFeed, SyscallFeed
from rawtrace.events.event_programs import EventMaps
from rawtrace.events.tracepoint_events import ctx_fields
from rawtrace.kernel.bpf import MapType, ProgType
from rawtrace.kernel.loading import OwnedPrograms, Program
from rawtrace.kernel.maps import Map

# processes whose end was reported, kept while their other threads may still reach the
# tracepoint (a moment): the oldest go first
REPORTED_ENTRIES = 4096


def syscall_fed(specs: Sequence[EventSpec], task: TaskLayout | None) -> list[EventSpec]:
    """The events the syscall family attaches: all but those a tracepoint feeds here."""
    return [
        spec
        for spec in specs
        if isinstance(spec.feed, SyscallFeed) and not _tracepoint_fed(spec, task)
    ]


def _tracepoint_fed(spec: EventSpec, task: TaskLayout | None) -> bool:
    """A tracepoint feeds the event here: with BTF, or where it has no syscall feed."""
    return spec.tracepoint is not None and (task is not None or spec.feed is None)


def attach_tracepoint_fed(
    specs: Sequence[EventSpec],
    task: TaskLayout | None,
    tracefs: Path,
    output: Output,
    filters: Filters,
    resources: ExitStack,
    links: ExitStack,
) -> None:
    """Load and attach the programs of the events a tracepoint feeds (without BTF, only those
    with no syscall feed): maps and programs owned by `resources`, attachments by `links`."""
    for spec in specs:
        if spec.tracepoint is None or not _tracepoint_fed(spec, task):
            continue
        category, name = spec.tracepoint.category, spec.tracepoint.name
        tracepoint = read_tracepoint_format(tracefs, category, name)
        copied = ctx_fields(spec)
        if copied is not None:  # a declared tracepoint event (rawtrace.tracepoint_event)
            code = tracepoint_copy(
                fields=copied,
                output=output,
                event_id=spec.event_id,
                filters=filters,
                task=task,
                tail=Tail(Capture(), _scratch(spec, resources).fileno(), extra=spec.tail_size),
            )
            program = OwnedPrograms(spec.name, resources).load("copy", ProgType.TRACEPOINT, code)
        else:
            load = _LOADERS[(category, name)]
            program = load(spec, tracepoint, task, output, filters, resources)
        links.callback(attach_tracepoint(program, tracefs, category, name).close)


def attach_exec_facts(
    maps: Sequence[tuple[EventSpec, EventMaps]],
    task: TaskLayout | None,
    tracefs: Path,
    resources: ExitStack,
    links: ExitStack,
) -> None:
    """Where the trace has exec events (execve, execveat), the program that gives their noted
    tails the kernel's path, and argv from the new mm (with BTF) where the entry read none."""
    records = [
        ExecRecord(event.start_times.fileno(), 8 + at)
        for spec, event in maps
        if spec.capture is not None and (at := spec.capture.offset_of(ExecStrings)) is not None
    ]
    if not records:
        return
    filename = read_tracepoint_format(tracefs, "sched", "sched_process_exec").field("filename")
    code = fix_exec_records(records, filename.offset, task)
    program = OwnedPrograms("exec_facts", resources).load("fix", ProgType.TRACEPOINT, code)
    links.callback(attach_tracepoint(program, tracefs, "sched", "sched_process_exec").close)


def _scratch(spec: EventSpec, resources: ExitStack) -> Map:
    """The per-CPU array the event's record is built in: the record, then its tail."""
    return resources.enter_context(
        Map.create(
            MapType.PERCPU_ARRAY,
            key_size=4,
            value_size=SYSCALL_RECORD.size + spec.tail_size,
            max_entries=1,
            name=f"{spec.name}_record"[:15],
        )
    )


def attach_kprobe_fed(
    specs: Sequence[EventSpec],
    task: TaskLayout | None,
    output: Output,
    filters: Filters,
    resources: ExitStack,
    links: ExitStack,
) -> None:
    """Load and attach the programs of declared kprobe events (rawtrace.kprobe_event): each
    sends its record at the function's entry, with the args from its registers."""
    kprobes = [(spec, spec.feed.symbol) for spec in specs if isinstance(spec.feed, KprobeFeed)]
    if not kprobes:
        return
    try:
        pmu = KprobePmu.create()
    except KernelFeatureMissing as exc:  # no other family can feed a kernel function's entry
        names = ", ".join(spec.name for spec, _ in kprobes)
        raise KernelFeatureMissing(
            f"kprobe events ({names}) need kprobes: {exc.cause}",
            "trace a syscall_event or tracepoint_event instead",
        ) from exc
    where = ArgsInContext(pt_regs_layout().call_args)
    for spec, symbol in kprobes:
        capture = spec.capture or Capture()
        code = syscall_entry_event(
            args=where,
            output=output,
            event_id=spec.event_id,
            filters=filters,
            task=task,
            tail=Tail(capture, _scratch(spec, resources).fileno()),
        )
        program = OwnedPrograms(spec.name, resources).load("entry", ProgType.KPROBE, code)
        links.callback(pmu.attach_probe(program, symbol, False).close)


def _process_exit(
    spec: EventSpec,
    tracepoint: TracepointFormat,
    task: TaskLayout | None,
    output: Output,
    filters: Filters,
    resources: ExitStack,
) -> Program:
    if task is None:  # _tracepoint_fed: exit has a syscall feed for kernels without BTF
        raise ValueError("the exit event's tracepoint program needs the BTF task layout")
    scratch = _scratch(spec, resources)
    end: ProcessEnd
    if "group_dead" in tracepoint.fields:
        end = GroupDeadField(tracepoint.field("group_dead").offset)
    else:
        reported = resources.enter_context(
            Map.create(
                MapType.LRU_HASH,
                key_size=REPORTED_KEY_SIZE,
                value_size=REPORTED_VALUE_SIZE,
                max_entries=REPORTED_ENTRIES,
                name=f"{spec.name}_reported"[:15],
            )
        )
        end = LastThread(reported.fileno())
    code = process_exit(
        end=end,
        output=output,
        event_id=spec.event_id,
        filters=filters,
        task=task,
        tail=Tail(Capture(arg_count=1), scratch.fileno()),  # one u64 slot: TAIL_SIZE
    )
    return OwnedPrograms(spec.name, resources).load("process", ProgType.TRACEPOINT, code)


def _process_exec(
    spec: EventSpec,
    tracepoint: TracepointFormat,
    task: TaskLayout | None,
    output: Output,
    filters: Filters,
    resources: ExitStack,
) -> Program:
    if spec.capture is None:
        raise ValueError(f"{spec.name} needs a capture: its tail is the exec strings block")
    code = exec_event(
        filename_loc=tracepoint.field("filename").offset,
        output=output,
        event_id=spec.event_id,
        filters=filters,
        task=task,
        tail=Tail(spec.capture, _scratch(spec, resources).fileno()),
    )
    return OwnedPrograms(spec.name, resources).load("exec", ProgType.TRACEPOINT, code)


_Loader = Callable[
    [EventSpec, TracepointFormat, TaskLayout | None, Output, Filters, ExitStack], Program
]
_LOADERS: dict[tuple[str, str], _Loader] = {
    ("sched", "sched_process_exit"): _process_exit,
    ("sched", "sched_process_exec"): _process_exec,
}
