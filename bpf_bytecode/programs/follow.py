"""Following a process tree in the kernel: a hash map of followed tgids that grows at every fork
of a followed process and shrinks at every exit, so filters can ask "is the caller in the tree?".

    sched:sched_process_fork   runs in the parent: if followed[parent tgid], followed[child] = it
    sched:sched_process_free   when a task is freed, after its exit was reaped: delete
                               followed[tid]

A new thread is entered too (the tracepoint cannot tell it from a process); it is removed when
it is freed, like a process. Freed, not exited: the exit event's own program on
sched_process_exit (process_exit.py) still filters on the map, and runs after this module's,
which is attached first. The tid is freed before (an RCU grace period): a new task could only
reuse it in that moment once the whole pid space has wrapped.
"""

from __future__ import annotations

from bpf_bytecode.asm import (
    call,
    exit_,
    jeq_imm,
    label,
    ldxw,
    mov64_imm,
    mov64_reg,
    rsh64_imm,
    stxw,
)
from bpf_bytecode.fragments import BPF_ANY, map_delete, map_lookup, map_update
from bpf_bytecode.frame import Frame
from bpf_bytecode.helpers import Helper
from bpf_bytecode.insn import Item
from bpf_bytecode.opcodes import R0, R1, R6, R10
from bpf_bytecode.programs import OUT

FRAME = Frame("follow")
PARENT = FRAME.slot("parent", 4)  # the followed map's key, then the child's value
CHILD = FRAME.slot("child", 4)  # the child's key


def follow_forks(followed_fd: int, child_pid_offset: int) -> list[Item]:
    """On sched_process_fork; `child_pid_offset` is its child_pid field's offset."""
    return [
        mov64_reg(R6, R1),
        call(Helper.GET_CURRENT_PID_TGID),
        rsh64_imm(R0, 32),
        stxw(R10, PARENT, R0),
        *map_lookup(followed_fd, PARENT),
        jeq_imm(R0, 0, OUT),
        ldxw(R1, R6, child_pid_offset),
        stxw(R10, CHILD, R1),
        # the value: who forked it
        *map_update(followed_fd, CHILD, PARENT, BPF_ANY),
        label(OUT),
        mov64_imm(R0, 0),
        exit_(),
    ]


def forget_frees(followed_fd: int, pid_offset: int) -> list[Item]:
    """On sched_process_free, whose `pid` field (the tid) is at `pid_offset`: the freed task
    leaves the map (if it was there). It runs in no task of its own (an RCU callback)."""
    return [
        ldxw(R0, R1, pid_offset),
        stxw(R10, CHILD, R0),
        *map_delete(followed_fd, CHILD),
        mov64_imm(R0, 0),
        exit_(),
    ]
