"""Builders for syscall programs: one at entry that notes the time, one at exit that sends the
record (see record.py) to user space.

They do not know how they are attached. The attach family passes the few instructions that read
its context (a tracepoint's fields, a kprobe's pt_regs, a raw tracepoint's args): with the
context in r6 they pick out this syscall, jumping to OUT for any other, and the exit's load
the return value into r7. An event with a tail (capture.py) also gets where the family finds
the syscall's arguments (a SyscallArgs).

Stack frame (FRAME; r10 is the frame pointer):

    r10 -   8   key: pid_tgid, for the start-time map; at a raw exit first the syscall number
    r10 -  16   the start time, at an entry without a tail; at exit, a vfork child's tid
    r10 -  32   two 8-byte slots for a capture (capture.CaptureFrame)
    r10 -  80   the syscall's six arguments, at an entry with a tail
    r10 - 176   the 96-byte record; at entry, a vfork's hold (vfork.py) is built there
    r10 - 208   scratch for the task walk (task.py)
    r10 - 212   u32 0: the key of the per-CPU scratch array

An event with a tail keeps it, with the start time, in its start-time map's value between entry
and exit (a u64, then the tail), and builds its record in a per-CPU scratch array value (the
record, then the tail), which is too big for the stack.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from bpf_bytecode.asm import (
    add64_imm,
    call,
    exit_,
    jeq_imm,
    jne_imm,
    label,
    ldxdw,
    ldxw,
    mov64_imm,
    mov64_reg,
    stack_addr,
    stdw,
    stw,
    stxdw,
    stxw,
)
from bpf_bytecode.fragments import BPF_ANY, map_delete, map_lookup, map_update, scoped
from bpf_bytecode.frame import Frame, Slot
from bpf_bytecode.helpers import Helper
from bpf_bytecode.insn import Item
from bpf_bytecode.opcodes import R0, R1, R2, R3, R6, R7, R8, R9, R10, Reg
from bpf_bytecode.programs import OUT, record
from bpf_bytecode.programs.capture import (
    MAX_ARGS,
    Capture,
    CaptureFrame,
    CloneFlags,
    SyscallArgs,
    clone_flags_check,
    load_args,
)
from bpf_bytecode.programs.filters import NO_FILTERS, Filters, comm_filter, task_filters
from bpf_bytecode.programs.output import Output, emit_output, emit_output_from
from bpf_bytecode.programs.task import SCRATCH_SIZE, TaskFields, TaskLayout, read_task_fields
from bpf_bytecode.programs.vfork import BLOCK, HOLD, Hold, hold_block, note_hold

FRAME = Frame("syscall")
KEY = FRAME.slot("key", 8)
START = FRAME.slot("start", 8)
SLOT = FRAME.slot("slot", 8)
BYTE = FRAME.slot("byte", 8)
ARGS = FRAME.slot("args", 8 * MAX_ARGS)
REC = FRAME.slot("record", record.SYSCALL_RECORD.size)
TASK_SCRATCH = FRAME.slot("task_scratch", SCRATCH_SIZE)
# Last, so that it overlaps nothing: at r10 - 20 it lay in SLOT's bytes.
ZERO = FRAME.slot("zero", 4)
NR = KEY.part("syscall_nr", 0, 8)  # a raw exit's syscall number, before the key is stored
CHILD = START.part("child", 0, 4)  # at exit: a vfork child's tid, the key of its release
REC_COMM = REC.part("comm", record.COMM, record.COMM_SIZE)
REC_HOLD = REC.part("hold", 0, HOLD.size)  # at entry, where no record is built
_TASK_FIELDS = TaskFields(
    host_ppid=REC.at(record.HOST_PPID),
    mnt_ns=REC.at(record.MNT_NS),
    pid_ns=REC.at(record.PID_NS),
    ns_tid=REC.at(record.NS_TID),
    ns_pid=REC.at(record.NS_PID),
    ns_ppid=REC.at(record.NS_PPID),
)


def tail_size(capture: Capture, holds: bool) -> int:
    """The bytes after the fixed record: the capture, then for a holding call the BLOCK."""
    return capture.size + (BLOCK.size if holds else 0)


@dataclass(frozen=True)
class Tail:
    """What an event carries after the fixed record: its capture at entry, then for a call
    that can hold its parent (vfork, clone, clone3) the vfork BLOCK written at its return; and
    the per-CPU array (one value of record_size bytes, key 0) the programs build in."""

    capture: Capture
    scratch_fd: int
    hold: Hold | None = None
    extra: int = 0  # bytes a tracepoint program writes itself (tracepoint_copy.py)

    @property
    def size(self) -> int:
        return tail_size(self.capture, self.hold is not None) + self.extra

    @property
    def record_size(self) -> int:
        return record.SYSCALL_RECORD.size + self.size


def scratch_value(tail: Tail, dst: Reg, skip: str) -> list[Item]:
    """dst = this CPU's scratch value. Clobbers r0-r5."""
    return [
        stw(R10, ZERO, 0),
        *map_lookup(tail.scratch_fd, ZERO),
        jeq_imm(R0, 0, skip),  # never null for key 0, but the verifier asks
        mov64_reg(dst, R0),
    ]


def _capture(args: SyscallArgs, tail: Tail, out: Reg, at: int) -> list[Item]:
    """Build the tail at `out` + at, `out` (r6-r9) being the scratch value."""
    return [
        *load_args(args, tail.capture.arg_count, ARGS),
        *scratch_value(tail, out, OUT),
        *tail.capture.build(CaptureFrame(ARGS, SLOT, BYTE, out, at)),
    ]


def ret_at(offset: int) -> list[Item]:
    """The return value, a u64 at `offset` in the context: a syscalls:sys_exit_* tracepoint's
    `ret` field, or PT_REGS_RC in the pt_regs of a kretprobe."""
    return [ldxdw(R7, R6, offset)]


# The raw syscall tracepoints fire for every syscall; their context is the tracepoint's
# arguments as u64s: sys_enter(struct pt_regs *regs, long id), sys_exit(struct pt_regs *regs,
# long ret). This holds for raw tracepoint and tp_btf programs alike.
RAW_ARG_REGS, RAW_ARG_1 = 0, 8


def raw_syscall_enter_match(nr: int, skip: str = OUT) -> list[Item]:
    """At raw sys_enter: skip every syscall but number `nr`."""
    return [ldxdw(R1, R6, RAW_ARG_1), jne_imm(R1, nr, skip)]


def raw_syscall_exit_ret(
    nrs: Sequence[int], nr_offset: int, nr_size: int, probe_read: Helper, skip: str = OUT
) -> list[Item]:
    """At raw sys_exit: skip every syscall but numbers `nrs` (the syscall's, then any its exit
    is also reported as), else load the return value.

    sys_exit does not pass the number: it is in regs, at `nr_offset` (`nr_size` bytes), read
    with `probe_read` (bpf_probe_read_kernel, or bpf_probe_read before 5.5) into the key slot
    (NR), which the exit program only fills later.
    """
    load = ldxw if nr_size == 4 else ldxdw
    return scoped(
        "raw_exit",
        [
            *stack_addr(R1, NR),
            mov64_imm(R2, nr_size),
            ldxdw(R3, R6, RAW_ARG_REGS),
            add64_imm(R3, nr_offset),
            call(probe_read),
            jne_imm(R0, 0, skip),
            load(R1, R10, NR),
            *[jeq_imm(R1, nr, "this_syscall") for nr in nrs[1:]],
            jne_imm(R1, nrs[0], skip),
            label("this_syscall"),
            ldxdw(R7, R6, RAW_ARG_1),
        ],
    )


def _task_fields(layout: TaskLayout | None) -> list[Item]:
    if layout is None:
        # the 24 bytes from host_ppid to pid_ns: zeroed, since a record is sent whole
        return [stdw(R10, REC.at(record.HOST_PPID + offset), 0) for offset in (0, 8, 16)]
    return read_task_fields(layout, _TASK_FIELDS, TASK_SCRATCH)


def syscall_enter(
    *,
    match: Sequence[Item] = (),
    start_times_fd: int,
    filters: Filters = NO_FILTERS,
    args: SyscallArgs | None = None,
    tail: Tail | None = None,
    only: CloneFlags | None = None,
) -> list[Item]:
    """At entry: start_times[pid_tgid] = now, or with a tail: now and the tail, built from the
    syscall's `args`; and a call that holds its parent notes the hold (vfork.py). With `only`,
    nothing for a clone call with other flags: the exit, finding no entry, sends nothing."""
    note: list[Item]
    value: Reg | Slot
    check: list[Item] = []
    if only is not None:
        if args is None:
            raise ValueError("a clone flags check needs the syscall's args")
        check = clone_flags_check(only, args, ARGS, SLOT)
    if tail is None:
        note = [
            call(Helper.KTIME_GET_NS),
            stxdw(R10, START, R0),
        ]
        value = START
    elif args is None:
        raise ValueError("an event with a tail needs its syscall's args")
    else:
        note = [
            *_capture(args, tail, R8, 8),
            call(Helper.KTIME_GET_NS),
            stxdw(R8, 0, R0),
        ]
        value = R8
    return [
        mov64_reg(R6, R1),
        *match,
        call(Helper.GET_CURRENT_PID_TGID),
        mov64_reg(R7, R0),
        *task_filters(filters, R7, KEY, OUT),
        *check,
        stxdw(R10, KEY, R7),
        *note,
        *map_update(start_times_fd, KEY, value, BPF_ANY),
        *_note_hold(tail, filters),
        label(OUT),
        mov64_imm(R0, 0),
        exit_(),
    ]


def _comm(filters: Filters) -> list[Item]:
    """The record's comm, and the comm filter; clobbers r0-r5."""
    return [
        # Some kernels (6.1 among the matrix's) copy the name with strscpy, which
        # leaves the bytes after it as they were: zero them first, so the name compares (and
        # is sent) NUL padded, with no stale stack bytes.
        stdw(R10, REC_COMM.at(0), 0),
        stdw(R10, REC_COMM.at(8), 0),
        *stack_addr(R1, REC_COMM),
        mov64_imm(R2, record.COMM_SIZE),
        call(Helper.GET_CURRENT_COMM),
        *comm_filter(filters, REC_COMM, OUT),
    ]


def _note_hold(tail: Tail | None, filters: Filters) -> list[Item]:
    if tail is None or tail.hold is None:
        return []
    # The comm filter runs here too, for the holds map, where user space looks for stalls,
    # should keep only holds whose events pass. The hold is built before the record's comm.
    comm = _comm(filters) if filters.comms else []
    # r8, the start-time value the tail was built in, starts with the start time
    return [*comm, *note_hold(tail.hold, KEY, R8, ARGS, SLOT, REC_HOLD, OUT)]


def _hold_block(tail: Tail | None) -> list[Item]:
    """The vfork BLOCK, at the end of the scratch record's tail; r9 (the start time) is spilled
    to the record's slot, where send_record stores it anyway."""
    if tail is None or tail.hold is None:
        return []
    return [
        stxdw(R10, REC.at(record.START_TS), R9),
        *scratch_value(tail, R9, OUT),
        *hold_block(tail.hold.maps, R9, record.SYSCALL_RECORD.size + tail.capture.size, KEY, CHILD),
        ldxdw(R9, R10, REC.at(record.START_TS)),
    ]


def syscall_entry_event(
    *,
    match: Sequence[Item] = (),
    args: SyscallArgs,
    output: Output,
    event_id: int,
    filters: Filters = NO_FILTERS,
    task: TaskLayout | None = None,
    tail: Tail,
) -> list[Item]:
    """At entry, for a call that does not return (exit_group): send the record there, with
    return value 0 and the entry as its start."""
    return [
        mov64_reg(R6, R1),
        *match,
        call(Helper.GET_CURRENT_PID_TGID),
        mov64_reg(R8, R0),
        *task_filters(filters, R8, KEY, OUT),
        *_capture(args, tail, R7, record.SYSCALL_RECORD.size),
        call(Helper.KTIME_GET_NS),
        mov64_reg(R9, R0),
        mov64_imm(R7, 0),
        *send_record(output, event_id, filters, task, tail),
        label(OUT),
        mov64_imm(R0, 0),
        exit_(),
    ]


def _start_time(start_times_fd: int, tail: Tail | None, entry_required: bool) -> list[Item]:
    """r9 = the start time noted at entry, 0 if it was not seen; the entry's note is deleted.

    With a tail, the tail goes to the scratch record, and an exit whose entry was not seen
    is dropped: it has no arguments to report. So is one with `entry_required`, whose entry
    chose not to count the call.
    """
    found: list[Item]
    if tail is None and entry_required:
        found = [
            jeq_imm(R0, 0, OUT),
            ldxdw(R9, R0, 0),
        ]
    elif tail is None:
        found = [
            mov64_imm(R9, 0),
            jeq_imm(R0, 0, "unknown"),
            ldxdw(R9, R0, 0),
            label("unknown"),
        ]
    elif tail.capture.size == 0:  # vfork: a tail only for its BLOCK
        found = [
            jeq_imm(R0, 0, OUT),
            ldxdw(R9, R0, 0),
        ]
    else:
        found = [
            jeq_imm(R0, 0, OUT),
            mov64_reg(R9, R0),
            *scratch_value(tail, R1, OUT),
            add64_imm(R1, record.SYSCALL_RECORD.size),
            mov64_imm(R2, tail.capture.size),
            mov64_reg(R3, R9),
            add64_imm(R3, 8),
            ldxdw(R9, R9, 0),
            # from one map value to another: both kernel memory the helper may read
            call(Helper.PROBE_READ_KERNEL),
        ]
    return scoped(
        "start_time",
        [
            *map_lookup(start_times_fd, KEY),
            *found,
            *map_delete(start_times_fd, KEY),
        ],
    )


def send_record(
    output: Output, event_id: int, filters: Filters, task: TaskLayout | None, tail: Tail | None
) -> list[Item]:
    """With ctx in r6, the return value in r7, pid_tgid in r8 and the start time in r9: fill in
    the record and send it, from the stack, or with a tail from the scratch value whose tail
    is already there."""
    if tail is None:
        send = emit_output(output, R6, REC, record.SYSCALL_RECORD.size)
    else:
        send = [
            *scratch_value(tail, R9, OUT),
            *[
                insn
                for offset in range(0, record.SYSCALL_RECORD.size, 8)
                for insn in (ldxdw(R1, R10, REC.at(offset)), stxdw(R9, offset, R1))
            ],
            *emit_output_from(output, R6, R9, tail.record_size, REC),
        ]
    return [
        stxdw(R10, REC.at(record.START_TS), R9),
        stxdw(R10, REC.at(record.PID_TGID), R8),
        stxdw(R10, REC.at(record.RET), R7),
        call(Helper.KTIME_GET_NS),
        stxdw(R10, REC.at(record.TS), R0),
        call(Helper.GET_CURRENT_UID_GID),
        stxdw(R10, REC.at(record.UID_GID), R0),
        call(Helper.GET_CURRENT_CGROUP_ID),
        stxdw(R10, REC.at(record.CGROUP_ID), R0),
        *_comm(filters),
        *_task_fields(task),
        call(Helper.GET_SMP_PROCESSOR_ID),
        stxw(R10, REC.at(record.CPU), R0),
        stw(R10, REC.at(record.EVENT_ID), event_id),
        *send,
    ]


def syscall_exit(
    *,
    load_ret: Sequence[Item],
    start_times_fd: int,
    output: Output,
    event_id: int,
    skip_child_return: bool,
    filters: Filters = NO_FILTERS,
    task: TaskLayout | None = None,
    tail: Tail | None = None,
    entry_required: bool = False,
) -> list[Item]:
    """At exit: send one record with the return value and the start time (and tail) noted at
    entry; with `entry_required` (an entry that checks clone flags) only if it was noted.

    With `skip_child_return`, a return value of 0 is dropped: for fork-like calls it is the child's
    own return, and the parent's return already describes the call. `task` (from BTF) lets the
    record carry the parent and namespace fields; without it they stay 0.
    """
    child_return = [jeq_imm(R7, 0, OUT)] if skip_child_return else []
    return [
        mov64_reg(R6, R1),
        *load_ret,
        *child_return,
        call(Helper.GET_CURRENT_PID_TGID),
        mov64_reg(R8, R0),
        *task_filters(filters, R8, KEY, OUT),
        stxdw(R10, KEY, R8),
        *_start_time(start_times_fd, tail, entry_required),
        # before send_record's comm filter: a hold is forgotten whether or not its event is sent
        *_hold_block(tail),
        *send_record(output, event_id, filters, task, tail),
        label(OUT),
        mov64_imm(R0, 0),
        exit_(),
    ]
