"""Reading the current task's family and namespaces: a small, explicit stand-in for CO-RE.

The offsets come from the running kernel's BTF (TaskLayout, filled by the caller); the code walks
the pointers with bpf_probe_read_kernel, so it verifies on every kernel from 5.5 on without
trusting a pointer the verifier cannot see into.

    host ppid    task->real_parent->tgid
    mnt ns       task->nsproxy->mnt_ns->ns.inum
    pid ns       task->thread_pid->numbers[level].ns->ns.inum      (the task's own namespace)
    ns tid       task->thread_pid->numbers[level].nr
    ns pid       task->group_leader->thread_pid->numbers[level].nr
    ns ppid      task->real_parent->group_leader->thread_pid->numbers[level].nr, or 0 when the
                 parent lives in an ancestor namespace, where the task cannot see it

The exit event's program (process_exit.py) reads task->exit_code, task->signal->live and
task->group_leader->start_time with the same offsets and read_field; the exec facts
(exec_facts.py) read task->mm->arg_start and arg_end.
"""

from __future__ import annotations

from dataclasses import dataclass

from bpf_bytecode.asm import (
    add64_imm,
    add64_reg,
    call,
    jgt_reg,
    label,
    ldxdw,
    ldxw,
    mov64_imm,
    mul64_imm,
    stack_addr,
    stw,
    stxdw,
)
from bpf_bytecode.fragments import scoped
from bpf_bytecode.frame import Slot, StackOff
from bpf_bytecode.helpers import Helper
from bpf_bytecode.insn import Item
from bpf_bytecode.opcodes import R0, R1, R2, R3, R10


@dataclass(frozen=True)
class TaskLayout:
    """Byte offsets of the fields the walk reads, as this kernel's BTF gives them."""

    task_real_parent: int
    task_group_leader: int
    task_tgid: int
    task_thread_pid: int
    task_nsproxy: int
    nsproxy_mnt_ns: int
    mnt_ns_inum: int
    pid_level: int
    pid_numbers: int
    upid_size: int
    upid_nr: int
    upid_ns: int
    pid_ns_inum: int
    # for the exit event (process_exit.py)
    task_exit_code: int
    task_signal: int
    signal_live: int
    task_start_time: int
    # for exec facts (exec_facts.py): the new image's argument area
    task_mm: int
    mm_arg_start: int
    mm_arg_end: int


@dataclass(frozen=True)
class TaskFields:
    """Where the walk writes its results on the stack (each a u32)."""

    host_ppid: StackOff
    mnt_ns: StackOff
    pid_ns: StackOff
    ns_tid: StackOff
    ns_pid: StackOff
    ns_ppid: StackOff


SCRATCH_SIZE = 32
"""Stack bytes the walk needs in the `scratch` slot it is given."""


def read_field(dst: StackOff, size: int, base: StackOff, offset: int) -> list[Item]:
    """dst = size bytes at (*(u64 *)base + offset), read from the kernel; dst and base on the
    stack."""
    return [
        *stack_addr(R1, dst),
        mov64_imm(R2, size),
        ldxdw(R3, R10, base),
        add64_imm(R3, offset),
        call(Helper.PROBE_READ_KERNEL),
    ]


def _read_upid_field(
    dst: StackOff, size: int, pid: Slot, level: Slot, field: int, layout: TaskLayout
) -> list[Item]:
    """dst = pid->numbers[level].<field>, with pid and level in stack slots."""
    return [
        *stack_addr(R1, dst),
        mov64_imm(R2, size),
        ldxw(R3, R10, level),
        mul64_imm(R3, layout.upid_size),
        ldxdw(R0, R10, pid),
        add64_reg(R3, R0),
        add64_imm(R3, layout.pid_numbers + field),
        call(Helper.PROBE_READ_KERNEL),
    ]


def read_task_fields(layout: TaskLayout, out: TaskFields, scratch: Slot) -> list[Item]:
    """Fill `out` for the current task. Clobbers r0-r5 and the SCRATCH_SIZE bytes of slot
    `scratch`.

    A read that faults leaves its destination as the helper zeroes it, so a torn walk (a
    parent exiting under us) reports 0, never a stale value.
    """
    task = scratch.part("task", 0, 8)
    ptr = scratch.part("ptr", 8, 8)
    level = scratch.part("level", 16, 4)
    parent_level = scratch.part("parent_level", 24, 4)
    return scoped(
        "task_walk",
        [
            call(Helper.GET_CURRENT_TASK),
            stxdw(R10, task, R0),
            # host ppid
            *read_field(ptr, 8, task, layout.task_real_parent),
            *read_field(out.host_ppid, 4, ptr, layout.task_tgid),
            # mount namespace
            *read_field(ptr, 8, task, layout.task_nsproxy),
            *read_field(ptr, 8, ptr, layout.nsproxy_mnt_ns),
            *read_field(out.mnt_ns, 4, ptr, layout.mnt_ns_inum),
            # the task's own pid: its level, nr there, and that namespace
            *read_field(ptr, 8, task, layout.task_thread_pid),
            stw(R10, level, 0),
            *read_field(level, 4, ptr, layout.pid_level),
            *_read_upid_field(out.ns_tid, 4, ptr, level, layout.upid_nr, layout),
            *_read_upid_field(ptr, 8, ptr, level, layout.upid_ns, layout),
            *read_field(out.pid_ns, 4, ptr, layout.pid_ns_inum),
            # the thread group leader's pid at the same level
            *read_field(ptr, 8, task, layout.task_group_leader),
            *read_field(ptr, 8, ptr, layout.task_thread_pid),
            *_read_upid_field(out.ns_pid, 4, ptr, level, layout.upid_nr, layout),
            # the parent's, if it is visible from the task's namespace
            stw(R10, out.ns_ppid, 0),
            *read_field(ptr, 8, task, layout.task_real_parent),
            *read_field(ptr, 8, ptr, layout.task_group_leader),
            *read_field(ptr, 8, ptr, layout.task_thread_pid),
            stw(R10, parent_level, 0),
            *read_field(parent_level, 4, ptr, layout.pid_level),
            ldxw(R1, R10, level),
            ldxw(R2, R10, parent_level),
            jgt_reg(R1, R2, "parent_unseen"),
            *_read_upid_field(out.ns_ppid, 4, ptr, level, layout.upid_nr, layout),
            label("parent_unseen"),
        ],
    )
