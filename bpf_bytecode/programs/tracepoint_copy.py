"""A declared tracepoint's event (rawtrace.tracepoint_event): its fields copied from the
tracepoint's context into the record's tail, one after another, then the record sent.

    CtxCopy(offset, size)        `size` bytes at `offset` in the context: an integer, a pointer,
                                 a char array, as the tracepoint's format file places them
    CtxString(loc, length)       a __data_loc string, whose u32 at `loc` says where it is:
        +0   u32   flags: TRUNCATED_PATH when it did not fit, UNAVAILABLE_PATH when unread
        +4   u32   0
        +8   `length` bytes, NUL-terminated

The record and its filters are the syscall programs' (syscall.send_record); the return value
and start time are 0: no call returns here.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Union

from bpf_bytecode.asm import (
    add64_imm,
    call,
    exit_,
    jle_imm,
    jsge_imm,
    label,
    ldxw,
    mov64_imm,
    mov64_reg,
    rsh64_imm,
    stdw,
)
from bpf_bytecode.fragments import scoped
from bpf_bytecode.helpers import Helper
from bpf_bytecode.insn import Item
from bpf_bytecode.opcodes import R0, R1, R2, R3, R6, R7, R8, R9, Reg
from bpf_bytecode.programs import OUT, record
from bpf_bytecode.programs.capture import TRUNCATED_PATH, UNAVAILABLE_PATH, set_flag
from bpf_bytecode.programs.filters import Filters, task_filters
from bpf_bytecode.programs.output import Output
from bpf_bytecode.programs.syscall import KEY, Tail, scratch_value, send_record
from bpf_bytecode.programs.task import TaskLayout
from bpf_bytecode.programs.vfork import kernel_string


@dataclass(frozen=True)
class CtxCopy:
    offset: int
    size: int

    def build(self, out: Reg, at: int) -> list[Item]:
        return [
            mov64_reg(R1, out),
            add64_imm(R1, at),
            mov64_imm(R2, self.size),
            mov64_reg(R3, R6),
            add64_imm(R3, self.offset),
            call(Helper.PROBE_READ_KERNEL),
        ]


@dataclass(frozen=True)
class CtxString:
    loc: int
    length: int

    @property
    def size(self) -> int:
        return 8 + self.length

    def build(self, out: Reg, at: int) -> list[Item]:
        return scoped(
            f"string{self.loc}",
            [
                stdw(out, at, 0),
                *kernel_string(out, at + 8, self.length, self.loc),
                jsge_imm(R0, 0, "read"),
                *set_flag(out, at, UNAVAILABLE_PATH),
                label("read"),
                # the field's length, with its NUL, is in the high half of its __data_loc
                ldxw(R1, R6, self.loc),
                rsh64_imm(R1, 16),
                jle_imm(R1, self.length, "whole"),
                *set_flag(out, at, TRUNCATED_PATH),
                label("whole"),
            ],
        )


CtxField = Union[CtxCopy, CtxString]


def tracepoint_copy(
    *,
    fields: Sequence[CtxField],
    output: Output,
    event_id: int,
    filters: Filters,
    task: TaskLayout | None,
    tail: Tail,
) -> list[Item]:
    """On the tracepoint: the record, its tail the `fields` in order (`tail` has room)."""
    code: list[Item] = []
    at = record.SYSCALL_RECORD.size
    for field in fields:
        code += field.build(R9, at)
        at += field.size
    return [
        mov64_reg(R6, R1),
        call(Helper.GET_CURRENT_PID_TGID),
        mov64_reg(R8, R0),
        *task_filters(filters, R8, KEY, OUT),
        *scratch_value(tail, R9, OUT),
        *code,
        mov64_imm(R7, 0),
        mov64_imm(R9, 0),
        *send_record(output, event_id, filters, task, tail),
        label(OUT),
        mov64_imm(R0, 0),
        exit_(),
    ]
