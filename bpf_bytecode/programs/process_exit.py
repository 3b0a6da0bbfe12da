"""The exit event's program on sched:sched_process_exit: one record when a process ends, with the
status its parent will be told.

The tracepoint fires in every exiting thread, after do_exit() has set task->exit_code (the wait
status: the code << 8, or the signal, | 0x80 for a core dump) and taken the thread off
signal->live. The process ends with the thread that brought live to 0 ("group dead"):

    the tracepoint's group_dead field   where the format has it (6.18 does): exact
    signal->live == 0, through BTF      before that. A thread that left live earlier can reach
                                        the tracepoint after the last one (exit_mm() lay
                                        between them until the field came) and read 0 too, so
                                        each process is reported once: a BPF_NOEXIST insert
                                        keyed by the process (tgid, its leader's start_time)
                                        into an LRU hash succeeds for the first only.

Every thread of an exit_group() or of a fatal signal ends with the group's status, so the
last one's exit_code is the process's. Only when each thread ends with the exit syscall on its
own does the parent see the leader's code, which may differ from the last thread's.

The record and its filters are the syscall programs' (syscall.send_record), on syscall.py's
stack frame; this program's own slots lie in the frame's argument area, which it has no other
use for. The tail is 8 bytes: u32 task->exit_code, u32 0. The return value and start time
are 0: no call returns here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Union

from bpf_bytecode.asm import (
    add64_imm,
    call,
    exit_,
    jeq_imm,
    jne_imm,
    label,
    ldxb,
    ldxdw,
    ldxw,
    mov64_imm,
    mov64_reg,
    rsh64_imm,
    stw,
    stxdw,
    stxw,
)
from bpf_bytecode.fragments import BPF_NOEXIST, map_update
from bpf_bytecode.helpers import Helper
from bpf_bytecode.insn import Item
from bpf_bytecode.opcodes import R0, R1, R2, R3, R6, R7, R8, R9, R10
from bpf_bytecode.programs import OUT, record
from bpf_bytecode.programs.filters import Filters, task_filters
from bpf_bytecode.programs.output import Output
from bpf_bytecode.programs.syscall import ARGS, KEY, Tail, scratch_value, send_record
from bpf_bytecode.programs.task import TaskLayout, read_field

# This program's own slots, in syscall.py's argument area, which it has no other use for
TASK = ARGS.part("task", 0, 8)  # the current task
PTR = ARGS.part("ptr", 8, 8)  # a pointer on the way
LIVE = ARGS.part("live", 16, 4)  # signal->live (u32)
# the reported map's key: tgid (u32), 0 (u32), the leader's start_time; then its value (u32)
PROCESS = ARGS.part("process", 24, 16)
SEEN = ARGS.part("seen", 40, 4)
TAIL_SIZE = 8
REPORTED_KEY_SIZE, REPORTED_VALUE_SIZE = 16, 4


@dataclass(frozen=True)
class GroupDeadField:
    """The tracepoint says whether the group is dead: a bool at `offset` in its context."""

    offset: int


@dataclass(frozen=True)
class LastThread:
    """It does not: signal->live == 0, each process sent once through `reported_fd`, an LRU
    hash of REPORTED_KEY_SIZE-byte keys and REPORTED_VALUE_SIZE-byte values."""

    reported_fd: int


ProcessEnd = Union[GroupDeadField, LastThread]


def _group_dead_field(end: ProcessEnd) -> list[Item]:
    if not isinstance(end, GroupDeadField):
        return []
    return [ldxb(R1, R6, end.offset), jeq_imm(R1, 0, OUT)]


def _last_thread(end: ProcessEnd, task: TaskLayout) -> list[Item]:
    """With pid_tgid in r8 and the task at TASK: on to the record only for the thread that
    ended the process, and only once."""
    if not isinstance(end, LastThread):
        return []
    return [
        *read_field(PTR, 8, TASK, task.task_signal),
        *read_field(LIVE, 4, PTR, task.signal_live),
        jne_imm(R0, 0, OUT),  # a fault would read as 0: no guessing
        ldxw(R1, R10, LIVE),
        jne_imm(R1, 0, OUT),
        mov64_reg(R1, R8),
        rsh64_imm(R1, 32),
        stxw(R10, PROCESS.at(0), R1),
        stw(R10, PROCESS.at(4), 0),
        *read_field(PTR, 8, TASK, task.task_group_leader),
        *read_field(PROCESS.at(8), 8, PTR, task.task_start_time),
        stw(R10, SEEN, 1),
        *map_update(end.reported_fd, PROCESS, SEEN, BPF_NOEXIST),
        jne_imm(R0, 0, OUT),  # -EEXIST: another thread of it was first
    ]


def process_exit(
    *,
    end: ProcessEnd,
    output: Output,
    event_id: int,
    filters: Filters,
    task: TaskLayout,
    tail: Tail,
) -> list[Item]:
    """On sched_process_exit: send the record of a process that ended, with its exit_code in the
    tail (`tail` is TAIL_SIZE bytes)."""
    if tail.size != TAIL_SIZE:
        raise ValueError(f"the exit tail is {TAIL_SIZE} bytes, not {tail.size}")
    at = record.SYSCALL_RECORD.size
    return [
        mov64_reg(R6, R1),
        *_group_dead_field(end),
        call(Helper.GET_CURRENT_PID_TGID),
        mov64_reg(R8, R0),
        *task_filters(filters, R8, KEY, OUT),
        call(Helper.GET_CURRENT_TASK),
        stxdw(R10, TASK, R0),
        *_last_thread(end, task),
        *scratch_value(tail, R9, OUT),
        mov64_reg(R1, R9),
        add64_imm(R1, at),
        mov64_imm(R2, 4),
        ldxdw(R3, R10, TASK),
        add64_imm(R3, task.task_exit_code),
        call(Helper.PROBE_READ_KERNEL),
        stw(R9, at + 4, 0),
        mov64_imm(R7, 0),
        mov64_imm(R9, 0),
        *send_record(output, event_id, filters, task, tail),
        label(OUT),
        mov64_imm(R0, 0),
        exit_(),
    ]
