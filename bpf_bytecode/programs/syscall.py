"""Builders for syscall programs: one at entry that notes the time, one at exit that sends the
record (see record.py) to user space.

They do not know how they are attached. The attach family passes the few instructions that read
its context (a tracepoint's fields, a kprobe's pt_regs, a raw tracepoint's args): with the
context in r6 they pick out this syscall, jumping to "out" for any other, and the exit's load
the return value into r7.

Stack frame of the exit program (r10 is the frame pointer):

    r10 -  8   key: pid_tgid, for the start-time map
    r10 - 80   the 72-byte record
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
    jne_reg,
    label,
    ld_imm64,
    ld_map_fd,
    ldxdw,
    mov64_imm,
    mov64_reg,
    rsh64_imm,
    stw,
    stxdw,
    stxw,
)
from bpf_bytecode.helpers import Helper
from bpf_bytecode.insn import Item
from bpf_bytecode.opcodes import Reg
from bpf_bytecode.programs import record
from bpf_bytecode.programs.output import Output, emit_output

R0, R1, R2, R3, R4 = Reg.R0, Reg.R1, Reg.R2, Reg.R3, Reg.R4
R6, R7, R8, R9, R10 = Reg.R6, Reg.R7, Reg.R8, Reg.R9, Reg.R10

BPF_ANY = 0  # map update flag: create or replace

KEY = -8
REC = -8 - record.SYSCALL_RECORD.size


@dataclass(frozen=True)
class Filters:
    """What the programs drop in the kernel, before anything reaches a ring."""

    pid: int | None = None  # the caller's tgid
    comm: bytes | None = None  # the caller's comm, at most 15 bytes

    def __post_init__(self) -> None:
        if self.comm is not None and not 0 < len(self.comm) < record.COMM_SIZE:
            raise ValueError(f"a comm has 1 to {record.COMM_SIZE - 1} bytes, not {len(self.comm)}")


def _pid_filter(filters: Filters, pid_tgid: Reg, skip: str) -> list[Item]:
    if filters.pid is None:
        return []
    return [
        mov64_reg(R1, pid_tgid),
        rsh64_imm(R1, 32),
        jne_imm(R1, filters.pid, skip),
    ]


def _comm_filter(filters: Filters, skip: str) -> list[Item]:
    if filters.comm is None:
        return []
    padded = filters.comm.ljust(record.COMM_SIZE, b"\0")
    return [
        # bpf_get_current_comm pads with NULs, so the name compares as two 8-byte words
        ldxdw(R1, R10, REC + record.COMM),
        ld_imm64(R2, int.from_bytes(padded[:8], "little")),
        jne_reg(R1, R2, skip),
        ldxdw(R1, R10, REC + record.COMM + 8),
        ld_imm64(R2, int.from_bytes(padded[8:], "little")),
        jne_reg(R1, R2, skip),
    ]


def tracepoint_ret(ret_offset: int) -> list[Item]:
    """A syscalls:sys_exit_* tracepoint's return value, at `ret_offset` in its format."""
    return [ldxdw(R7, R6, ret_offset)]


def syscall_enter(
    *, match: Sequence[Item] = (), start_times_fd: int, filters: Filters = Filters()
) -> list[Item]:
    """At entry: start_times[pid_tgid] = now."""
    return [
        mov64_reg(R6, R1),
        *match,
        call(Helper.GET_CURRENT_PID_TGID),
        *_pid_filter(filters, R0, "out"),
        stxdw(R10, KEY, R0),
        call(Helper.KTIME_GET_NS),
        stxdw(R10, KEY - 8, R0),
        ld_map_fd(R1, start_times_fd),
        mov64_reg(R2, R10),
        add64_imm(R2, KEY),
        mov64_reg(R3, R10),
        add64_imm(R3, KEY - 8),
        mov64_imm(R4, BPF_ANY),
        call(Helper.MAP_UPDATE_ELEM),
        label("out"),
        mov64_imm(R0, 0),
        exit_(),
    ]


def syscall_exit(
    *,
    load_ret: Sequence[Item],
    start_times_fd: int,
    output: Output,
    event_id: int,
    skip_child_return: bool,
    filters: Filters = Filters(),
) -> list[Item]:
    """At exit: send one record with the return value and the start time noted at entry.

    With `skip_child_return`, a return value of 0 is dropped: for fork-like calls it is the child's
    own return, and the parent's return already describes the call.
    """
    child_return = [jeq_imm(R7, 0, "out")] if skip_child_return else []
    return [
        mov64_reg(R6, R1),
        *load_ret,
        *child_return,
        call(Helper.GET_CURRENT_PID_TGID),
        mov64_reg(R8, R0),
        *_pid_filter(filters, R8, "out"),
        stxdw(R10, KEY, R8),
        ld_map_fd(R1, start_times_fd),
        mov64_reg(R2, R10),
        add64_imm(R2, KEY),
        call(Helper.MAP_LOOKUP_ELEM),
        mov64_imm(R9, 0),
        jeq_imm(R0, 0, "start_unknown"),
        ldxdw(R9, R0, 0),
        label("start_unknown"),
        ld_map_fd(R1, start_times_fd),
        mov64_reg(R2, R10),
        add64_imm(R2, KEY),
        call(Helper.MAP_DELETE_ELEM),
        stxdw(R10, REC + record.START_TS, R9),
        stxdw(R10, REC + record.PID_TGID, R8),
        stxdw(R10, REC + record.RET, R7),
        call(Helper.KTIME_GET_NS),
        stxdw(R10, REC + record.TS, R0),
        call(Helper.GET_CURRENT_UID_GID),
        stxdw(R10, REC + record.UID_GID, R0),
        call(Helper.GET_CURRENT_CGROUP_ID),
        stxdw(R10, REC + record.CGROUP_ID, R0),
        mov64_reg(R1, R10),
        add64_imm(R1, REC + record.COMM),
        mov64_imm(R2, record.COMM_SIZE),
        call(Helper.GET_CURRENT_COMM),
        *_comm_filter(filters, "out"),
        call(Helper.GET_SMP_PROCESSOR_ID),
        stxw(R10, REC + record.CPU, R0),
        stw(R10, REC + record.EVENT_ID, event_id),
        *emit_output(output, R6, REC, record.SYSCALL_RECORD.size),
        label("out"),
        mov64_imm(R0, 0),
        exit_(),
    ]
