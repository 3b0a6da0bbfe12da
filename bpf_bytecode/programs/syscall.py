"""Builders for syscall programs: one at entry that notes the time, one at exit that sends the
record (see record.py) to user space.

They do not know how they are attached. The attach family passes the few instructions that read
its context (a tracepoint's fields, a kprobe's pt_regs, a raw tracepoint's args): with the
context in r6 they pick out this syscall, jumping to "out" for any other, and the exit's load
the return value into r7.

Stack frame of the exit program (r10 is the frame pointer):

    r10 -   8   key: pid_tgid, for the start-time map
    r10 - 104   the 96-byte record
    r10 - 136   scratch for the task walk (task.py)
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
    ldxw,
    mov64_imm,
    mov64_reg,
    rsh64_imm,
    stdw,
    stw,
    stxdw,
    stxw,
)
from bpf_bytecode.helpers import Helper
from bpf_bytecode.insn import Item
from bpf_bytecode.opcodes import Reg
from bpf_bytecode.programs import record
from bpf_bytecode.programs.output import Output, emit_output
from bpf_bytecode.programs.task import SCRATCH_SIZE, TaskFields, TaskLayout, read_task_fields

R0, R1, R2, R3, R4 = Reg.R0, Reg.R1, Reg.R2, Reg.R3, Reg.R4
R6, R7, R8, R9, R10 = Reg.R6, Reg.R7, Reg.R8, Reg.R9, Reg.R10

BPF_ANY = 0  # map update flag: create or replace

KEY = -8
REC = KEY - record.SYSCALL_RECORD.size
TASK_SCRATCH = REC - SCRATCH_SIZE
_TASK_FIELDS = TaskFields(
    host_ppid=REC + record.HOST_PPID,
    mnt_ns=REC + record.MNT_NS,
    pid_ns=REC + record.PID_NS,
    ns_tid=REC + record.NS_TID,
    ns_pid=REC + record.NS_PID,
    ns_ppid=REC + record.NS_PPID,
)


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


def ret_at(offset: int) -> list[Item]:
    """The return value, a u64 at `offset` in the context: a syscalls:sys_exit_* tracepoint's
    `ret` field, or PT_REGS_RC in the pt_regs of a kretprobe."""
    return [ldxdw(R7, R6, offset)]


# The raw syscall tracepoints fire for every syscall; their context is the tracepoint's
# arguments as u64s: sys_enter(struct pt_regs *regs, long id), sys_exit(struct pt_regs *regs,
# long ret). This holds for raw tracepoint and tp_btf programs alike.
RAW_ARG_REGS, RAW_ARG_1 = 0, 8


def raw_syscall_enter_match(nr: int) -> list[Item]:
    """At raw sys_enter: skip every syscall but number `nr`."""
    return [ldxdw(R1, R6, RAW_ARG_1), jne_imm(R1, nr, "out")]


def raw_syscall_exit_ret(nr: int, nr_offset: int, nr_size: int, probe_read: Helper) -> list[Item]:
    """At raw sys_exit: skip every syscall but number `nr`, else load the return value.

    sys_exit does not pass the number: it is in regs, at `nr_offset` (`nr_size` bytes), read
    with `probe_read` (bpf_probe_read_kernel, or bpf_probe_read before 5.5) into the key slot,
    which the exit program only fills later.
    """
    load = ldxw if nr_size == 4 else ldxdw
    return [
        mov64_reg(R1, R10),
        add64_imm(R1, KEY),
        mov64_imm(R2, nr_size),
        ldxdw(R3, R6, RAW_ARG_REGS),
        add64_imm(R3, nr_offset),
        call(probe_read),
        jne_imm(R0, 0, "out"),
        load(R1, R10, KEY),
        jne_imm(R1, nr, "out"),
        ldxdw(R7, R6, RAW_ARG_1),
    ]


def _task_fields(layout: TaskLayout | None) -> list[Item]:
    if layout is None:
        # the 24 bytes from host_ppid to pid_ns: zeroed, since a record is sent whole
        return [stdw(R10, REC + record.HOST_PPID + offset, 0) for offset in (0, 8, 16)]
    return read_task_fields(layout, _TASK_FIELDS, TASK_SCRATCH)


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
    task: TaskLayout | None = None,
) -> list[Item]:
    """At exit: send one record with the return value and the start time noted at entry.

    With `skip_child_return`, a return value of 0 is dropped: for fork-like calls it is the child's
    own return, and the parent's return already describes the call. `task` (from BTF) lets the
    record carry the parent and namespace fields; without it they stay 0.
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
        *_task_fields(task),
        call(Helper.GET_SMP_PROCESSOR_ID),
        stxw(R10, REC + record.CPU, R0),
        stw(R10, REC + record.EVENT_ID, event_id),
        *emit_output(output, R6, REC, record.SYSCALL_RECORD.size),
        label("out"),
        mov64_imm(R0, 0),
        exit_(),
    ]
