"""Exec facts from kernel memory, on sched:sched_process_exec.

At syscall entry, bpf_probe_read_user cannot fault in a page the caller never touched: a vfork
child's execl("/bin/true", ...) passes string literals from such a page, and the entry reads
nothing. sched_process_exec fires in the new image once the exec has succeeded, with two
copies that are in memory by construction:

    pathname   the tracepoint's filename (__data_loc): the kernel's bprm->filename
    argv       the new mm's argument area, task->mm->arg_start .. arg_end, NUL-separated
               strings the kernel has just written (so bpf_probe_read_user finds them)

Two programs use them, both writing capture.py's exec strings block (argc, flags, path, argv):

    fix_exec_records   for the execve and execveat events: in the tail their entry noted
                       (their start-time map's value), the path and argv the entry could not
                       read (UNAVAILABLE_PATH, UNAVAILABLE_ARGV) are read here. The exit, which
                       runs after the tracepoint in the same task, sends the record. What the
                       entry did read stays: it is what the caller passed, where the kernel's
                       filename for execveat(fd, "x") is "/dev/fd/<fd>/x".
    exec_event         the sched_process_exec event: the record, with the block as its tail.

The argument area holds the strings back to back, so each string's end is where the next
begins. A string cut at ARG_SIZE bytes leaves its end unknown: the strings after it are
dropped and the block says so (TRUNCATED_ARG | TRUNCATED_ARGV). Without BTF there is no mm to
read: the argv stays the entry's, or in the event is unavailable.

The slots lie in syscall.py's argument area, which these programs have no other use for.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from bpf_bytecode.asm import (
    add64_imm,
    add64_reg,
    and64_imm,
    call,
    exit_,
    ja,
    jeq_imm,
    jge_reg,
    jle_imm,
    jne_imm,
    jset_imm,
    jsgt_imm,
    label,
    ldxb,
    ldxdw,
    ldxw,
    mov64_imm,
    mov64_reg,
    rsh64_imm,
    stack_addr,
    stw,
    stxdw,
    stxw,
)
from bpf_bytecode.fragments import map_lookup, scoped
from bpf_bytecode.helpers import Helper
from bpf_bytecode.insn import Item
from bpf_bytecode.opcodes import R0, R1, R2, R3, R6, R7, R8, R9, R10, Reg
from bpf_bytecode.programs import OUT, record
from bpf_bytecode.programs.capture import (
    ARG_SIZE,
    ARGV_MAX,
    PATH_SIZE,
    TRUNCATED_ARG,
    TRUNCATED_ARGV,
    TRUNCATED_PATH,
    UNAVAILABLE_ARGV,
    UNAVAILABLE_PATH,
    set_flag,
)
from bpf_bytecode.programs.filters import Filters, task_filters
from bpf_bytecode.programs.output import Output
from bpf_bytecode.programs.syscall import ARGS, BYTE, KEY, Tail, scratch_value, send_record
from bpf_bytecode.programs.task import TaskLayout, read_field
from bpf_bytecode.programs.vfork import kernel_string

TASK = ARGS.part("task", 0, 8)
PTR = ARGS.part("ptr", 8, 8)
NEXT = ARGS.part("next", 16, 8)  # the next argv string's user address
END = ARGS.part("end", 24, 8)  # arg_end


@dataclass(frozen=True)
class ExecRecord:
    """An exec event's start-time map, and where its exec strings block lies in a value."""

    start_times_fd: int
    strings_at: int


def _path(out: Reg, at: int, filename_loc: int) -> list[Item]:
    """The block's path from the tracepoint's filename, with its own flags. Clobbers r0-r5."""
    flags = at + 4
    return scoped(
        "path",
        [
            ldxw(R1, out, flags),
            and64_imm(R1, ~(TRUNCATED_PATH | UNAVAILABLE_PATH)),
            stxw(out, flags, R1),
            *kernel_string(out, at + 8, PATH_SIZE, filename_loc),
            # the field's length, with its NUL, is in the high half of its __data_loc
            ldxw(R1, R6, filename_loc),
            rsh64_imm(R1, 16),
            jle_imm(R1, PATH_SIZE, "whole"),
            *set_flag(out, flags, TRUNCATED_PATH),
            label("whole"),
        ],
    )


def _argv(out: Reg, at: int, task: TaskLayout) -> list[Item]:
    """The block's argc and argv from the current mm's argument area, with their flags.
    Clobbers r0-r5."""
    flags = at + 4
    code: list[Item] = [
        ldxw(R1, out, flags),
        and64_imm(R1, ~(TRUNCATED_ARG | TRUNCATED_ARGV | UNAVAILABLE_ARGV)),
        stxw(out, flags, R1),
        stw(out, at, 0),
        call(Helper.GET_CURRENT_TASK),
        stxdw(R10, TASK, R0),
        *read_field(PTR, 8, TASK, task.task_mm),
        jne_imm(R0, 0, "fault"),
        *read_field(NEXT, 8, PTR, task.mm_arg_start),
        jne_imm(R0, 0, "fault"),
        *read_field(END, 8, PTR, task.mm_arg_end),
        jne_imm(R0, 0, "fault"),
    ]
    for i in range(ARGV_MAX + 1):
        code += [
            ldxdw(R1, R10, NEXT),
            ldxdw(R2, R10, END),
            jge_reg(R1, R2, "end"),
        ]
        if i == ARGV_MAX:
            code += set_flag(out, flags, TRUNCATED_ARGV)
            break
        code += [
            mov64_reg(R1, out),
            add64_imm(R1, at + 8 + PATH_SIZE + i * ARG_SIZE),
            mov64_imm(R2, ARG_SIZE),
            ldxdw(R3, R10, NEXT),
            call(Helper.PROBE_READ_USER_STR),
            jsgt_imm(R0, 0, f"read{i}"),
            ja("fault"),
            label(f"read{i}"),
            stw(out, at, i + 1),
            ldxdw(R1, R10, NEXT),
            add64_reg(R1, R0),  # past the string and its NUL
            stxdw(R10, NEXT, R1),
            # only a string that filled its slot may have been cut: its last byte says
            jne_imm(R0, ARG_SIZE, f"whole{i}"),
            *stack_addr(R1, BYTE),
            mov64_imm(R2, 1),
            ldxdw(R3, R10, NEXT),
            add64_imm(R3, -1),
            call(Helper.PROBE_READ_USER),
            ldxb(R1, R10, BYTE),
            jeq_imm(R1, 0, f"whole{i}"),
            *set_flag(out, flags, TRUNCATED_ARG | TRUNCATED_ARGV),
            ja("end"),
            label(f"whole{i}"),
        ]
    return scoped(
        "argv_from_mm",
        [
            *code,
            ja("end"),
            label("fault"),
            *set_flag(out, flags, UNAVAILABLE_ARGV),
            label("end"),
        ],
    )


def fix_exec_records(
    records: Sequence[ExecRecord], filename_loc: int, task: TaskLayout | None
) -> list[Item]:
    """On sched_process_exec: in each exec event's noted tail for this thread, the kernel's
    path where the entry could not read it, and argv from the new mm likewise."""
    code: list[Item] = [
        mov64_reg(R6, R1),
        call(Helper.GET_CURRENT_PID_TGID),
        stxdw(R10, KEY, R0),
    ]
    for n, target in enumerate(records):
        at = target.strings_at
        argv: list[Item] = []
        if task is not None:
            argv = [
                ldxw(R1, R7, at + 4),
                jset_imm(R1, UNAVAILABLE_ARGV, "argv"),
                ja("done"),
                label("argv"),
                *_argv(R7, at, task),
            ]
        code += scoped(
            f"event{n}",
            [
                *map_lookup(target.start_times_fd, KEY),
                jeq_imm(R0, 0, "done"),
                mov64_reg(R7, R0),
                ldxw(R1, R7, at + 4),
                jset_imm(R1, UNAVAILABLE_PATH, "path"),
                ja("path_done"),
                label("path"),
                *_path(R7, at, filename_loc),
                label("path_done"),
                *argv,
                label("done"),
            ],
        )
    return [*code, mov64_imm(R0, 0), exit_()]


def exec_event(
    *,
    filename_loc: int,
    output: Output,
    event_id: int,
    filters: Filters,
    task: TaskLayout | None,
    tail: Tail,
) -> list[Item]:
    """On sched_process_exec: send the record of an exec that succeeded, its tail the exec
    strings block (`tail` has room for it)."""
    at = record.SYSCALL_RECORD.size
    argv = _argv(R9, at, task) if task is not None else set_flag(R9, at + 4, UNAVAILABLE_ARGV)
    return [
        mov64_reg(R6, R1),
        call(Helper.GET_CURRENT_PID_TGID),
        mov64_reg(R8, R0),
        *task_filters(filters, R8, KEY, OUT),
        *scratch_value(tail, R9, OUT),
        stw(R9, at, 0),
        stw(R9, at + 4, 0),
        *_path(R9, at, filename_loc),
        *argv,
        mov64_imm(R7, 0),
        mov64_imm(R9, 0),
        *send_record(output, event_id, filters, task, tail),
        label(OUT),
        mov64_imm(R0, 0),
        exit_(),
    ]
