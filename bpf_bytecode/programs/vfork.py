"""Watching vfork's hold on its parent: how long the parent is suspended, and what released it.

A vfork (or a clone with CLONE_VFORK, which posix_spawn uses) suspends the parent until the child
execs or exits. Two hash maps follow each such call:

    holds     key: the parent's pid_tgid                  value: HOLD
      0  u64  start    when the call was entered (bpf_ktime_get_ns)
      8  u32  child    the child's tid, from sched_process_fork; 0 until then
     12  u32  call     the event id of the call: 58 vfork, 56 clone, 435 clone3

    children  key: the child's tid (u32)                  value: RELEASE
      0  u32  cause    what released the parent: Cause, | RELEASED once an exec succeeded,
                       | PATH_UNAVAILABLE while the exec's path is unread (a fault at entry)
      4  s32  code     the exit code (EXIT) or the signal (SIGNAL); before either, the last
                       fatal signal sent to the child
      8  PATH_SIZE     the pathname the child exec'd (EXECVE, EXECVEAT), NUL-terminated

The programs, in the order a vfork meets them:

    the call's entry      note_hold: holds[parent] (clone and clone3 only with CLONE_VFORK)
    sched_process_fork    note_child: in the parent, which is held: children[child] = UNKNOWN
    execve(at) entry      release_at_exec: children[child] = EXECVE(AT), path
    sched_prepare_exec    exec_path_from_kernel: where the entry could not read the path,
                          the kernel's copy (bprm->filename), in memory whatever page the
                          caller's string was in; before 6.10, which lacks that tracepoint,
                          sched_process_exec (see exec_path_from_kernel)
    execve(at) exit       exec_returned: a failed exec released nothing: back to UNKNOWN; a
                          successful one is final (RELEASED): the new program's own exits and
                          execs, which may come before the parent runs again, change nothing
    exit_group/exit entry release_at_exit: children[child] = EXIT, code
    signal_generate       note_signal: a signal sent to the child that kills by default: code
    signal_deliver        release_at_signal: a fatal default action: children[child] = SIGNAL,
                          code: the signal, or for SIGKILL the one note_signal saw. A fatal
                          signal sent with kill() arrives as SIGKILL: the kernel turns it into a
                          group exit (complete_signal) and delivers that.
    the parent's return   hold_block: the event's tail gets the hold time and the release; both
                          entries go

Each release is noted *before* it happens (at an entry, or as a signal is acted on), never after:
the woken parent may return on another CPU before the child's next instruction, and it must find
the cause already there. The holds map is also what user space scans for stalls: a hold older
than the threshold is a parent still waiting.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from dataclasses import dataclass
from enum import IntEnum

from bpf_bytecode.asm import (
    add64_imm,
    add64_reg,
    and64_imm,
    call,
    exit_,
    ja,
    jeq_imm,
    jle_imm,
    jne_imm,
    jset_imm,
    jsge_imm,
    jsle_imm,
    label,
    ldxdw,
    ldxw,
    mov64_imm,
    mov64_reg,
    or64_imm,
    stack_addr,
    stb,
    stdw,
    stw,
    stxdw,
    stxw,
    sub64_imm,
    sub64_reg,
)
from bpf_bytecode.fragments import BPF_ANY, map_delete, map_lookup, map_update, scoped
from bpf_bytecode.frame import Frame, Slot
from bpf_bytecode.helpers import Helper
from bpf_bytecode.insn import Item
from bpf_bytecode.opcodes import R0, R1, R2, R3, R6, R7, R10, Reg
from bpf_bytecode.programs import OUT
from bpf_bytecode.programs.capture import MAX_ARGS, PATH_SIZE, SyscallArgs, load_args

CLONE_VFORK = 0x4000

HOLD = struct.Struct("<QII")  # start, child, call
HOLD_START, HOLD_CHILD, HOLD_CALL = 0, 8, 12
RELEASE = struct.Struct(f"<Ii{PATH_SIZE}s")  # cause, code, path
CAUSE, CODE, PATH = 0, 4, 8
BLOCK = struct.Struct(f"<Q{RELEASE.size}s")  # hold_ns, then the RELEASE
"""What the parent's return adds to its event's tail: hold_ns (0: the call held nothing),
then the child's RELEASE."""


RELEASED = 0x100  # in cause: the parent is released, the cause is final
PATH_UNAVAILABLE = 0x200  # in cause: the exec's path could not be read


class Cause(IntEnum):
    """What released a held parent."""

    UNKNOWN = 0  # not seen: the child's release came before the trace, or by another way
    EXECVE = 1
    EXECVEAT = 2
    EXIT = 3
    SIGNAL = 4


class HeldWhen(IntEnum):
    """When a call holds its parent."""

    ALWAYS = 0  # vfork
    CLONE_FLAGS = 1  # clone: CLONE_VFORK in its first argument, the flags
    CLONE_ARGS = 2  # clone3: CLONE_VFORK in cl_args->flags, the first u64 its first argument


@dataclass(frozen=True)
class VforkMaps:
    holds_fd: int
    children_fd: int


@dataclass(frozen=True)
class Hold:
    """What a call's programs need to note and read holds: the maps, the call's event id, and
    when it holds."""

    maps: VforkMaps
    call: int
    when: HeldWhen


# The stack of note_child (on sched_process_fork)
FORK_FRAME = Frame("vfork_fork")
KEY = FORK_FRAME.slot("parent", 8)  # the holds map's key: the parent's pid_tgid
FORK_CHILD = FORK_FRAME.slot("child", 4)
FRESH = FORK_FRAME.slot("fresh", RELEASE.size)  # a zeroed RELEASE

# The stack of the programs that note a child's release. Through a raw tracepoint family,
# exec_returned's load_ret reads the syscall number into the exit program's key slot
# (syscall.KEY, 8 bytes at r10 - 8): the first 8 bytes stay free for it.
RELEASE_FRAME = Frame("vfork_release")
RELEASE_FRAME.slot("syscall_nr", 8)
CHILD = RELEASE_FRAME.slot("child", 4)  # the children map's key: the child's tid
ARGS = RELEASE_FRAME.slot("args", 8 * MAX_ARGS)


def note_hold(
    hold: Hold, key: Slot, start: Reg, args: Slot, slot: Slot, at: Slot, skip: str
) -> list[Item]:
    """At the call's entry: holds[*(u64 *)key] = {*(u64 *)start, 0, call}, for clone and
    clone3 only when their flags ask for CLONE_VFORK. Their first argument is the first u64
    of slot `args`; `slot` is 8 bytes of stack, `at` the HOLD.size bytes the HOLD is built
    in. Clobbers r0-r5; a call that does not hold jumps to `skip`."""
    flags: list[Item]
    if hold.when is HeldWhen.ALWAYS:
        flags = []
    elif hold.when is HeldWhen.CLONE_FLAGS:
        flags = [ldxdw(R1, R10, args.at(0))]
    else:
        flags = [
            *stack_addr(R1, slot),
            mov64_imm(R2, 8),
            ldxdw(R3, R10, args.at(0)),
            call(Helper.PROBE_READ_USER),
            jne_imm(R0, 0, skip),
            ldxdw(R1, R10, slot),
        ]
    if flags:
        flags += [
            and64_imm(R1, CLONE_VFORK),
            jeq_imm(R1, 0, skip),
        ]
    return [
        *flags,
        ldxdw(R1, start, 0),
        stxdw(R10, at.at(HOLD_START), R1),
        stw(R10, at.at(HOLD_CHILD), 0),
        stw(R10, at.at(HOLD_CALL), hold.call),
        *map_update(hold.maps.holds_fd, key, at, BPF_ANY),
    ]


def note_child(maps: VforkMaps, child_pid_offset: int) -> list[Item]:
    """On sched:sched_process_fork, which runs in the parent before the child can run: a held
    parent's child gets its RELEASE, UNKNOWN until it execs or exits. `child_pid_offset` is the
    tracepoint's child_pid field."""
    return [
        mov64_reg(R6, R1),
        call(Helper.GET_CURRENT_PID_TGID),
        stxdw(R10, KEY, R0),
        *map_lookup(maps.holds_fd, KEY),
        jeq_imm(R0, 0, OUT),
        ldxw(R1, R6, child_pid_offset),
        stxw(R0, HOLD_CHILD, R1),
        stxw(R10, FORK_CHILD, R1),
        *[stdw(R10, FRESH.at(offset), 0) for offset in range(0, RELEASE.size, 8)],
        *map_update(maps.children_fd, FORK_CHILD, FRESH, BPF_ANY),
        label(OUT),
        mov64_imm(R0, 0),
        exit_(),
    ]


def _child_release(maps: VforkMaps, skip: str) -> list[Item]:
    """r0 = the current task's RELEASE, if it is a held parent's child not yet released; else
    goto skip."""
    return [
        call(Helper.GET_CURRENT_PID_TGID),
        stxw(R10, CHILD, R0),  # the low half: the tid
        *_release_of(maps, skip),
    ]


def _release_of(maps: VforkMaps, skip: str) -> list[Item]:
    """r0 = the RELEASE of the child whose tid is in slot CHILD, if not yet released; else
    goto skip."""
    return [
        *map_lookup(maps.children_fd, CHILD),
        jeq_imm(R0, 0, skip),
        ldxw(R1, R0, CAUSE),
        jset_imm(R1, RELEASED, skip),
    ]


def release_at_exec(
    maps: VforkMaps, match: Sequence[Item], args: SyscallArgs, path_arg: int, cause: Cause
) -> list[Item]:
    """At execve's (or execveat's) entry, with the family's `match` and `args`: a child notes
    that its exec releases the parent, with the pathname. Noted before the exec succeeds; if it
    fails, exec_returned takes it back."""
    return [
        mov64_reg(R6, R1),
        *match,
        *_child_release(maps, OUT),
        mov64_reg(R7, R0),
        *load_args(args, path_arg + 1, ARGS),
        stw(R7, CAUSE, cause),
        mov64_reg(R1, R7),
        add64_imm(R1, PATH),
        mov64_imm(R2, PATH_SIZE),
        ldxdw(R3, R10, ARGS.at(8 * path_arg)),
        call(Helper.PROBE_READ_USER_STR),
        jsge_imm(R0, 0, OUT),
        stw(R7, CAUSE, cause | PATH_UNAVAILABLE),
        label(OUT),
        mov64_imm(R0, 0),
        exit_(),
    ]


def exec_path_from_kernel(maps: VforkMaps, filename_loc: int) -> list[Item]:
    """On sched_prepare_exec (or sched_process_exec): a child in a successful exec whose path
    the entry could not read takes the tracepoint's filename, the kernel's copy. The
    parent is woken when the exec drops the old memory, after sched_prepare_exec and before
    sched_process_exec: where only the latter exists, a parent that runs at once may see the
    entry's path (or none). `filename_loc` is the __data_loc field's offset in the context."""
    return [
        mov64_reg(R6, R1),
        *_child_release(maps, OUT),
        mov64_reg(R7, R0),
        ldxw(R1, R7, CAUSE),
        jset_imm(R1, PATH_UNAVAILABLE, "unread"),
        ja(OUT),
        label("unread"),
        and64_imm(R1, ~PATH_UNAVAILABLE),
        stxw(R7, CAUSE, R1),
        *kernel_string(R7, PATH, PATH_SIZE, filename_loc),
        label(OUT),
        mov64_imm(R0, 0),
        exit_(),
    ]


def kernel_string(out: Reg, at: int, size: int, loc_offset: int) -> list[Item]:
    """out + at = the tracepoint's __data_loc string at loc_offset in the context (r6): its
    u32 says where the string is (low 16 bits, from the context's start) and how long (high
    16 bits). Returns the helper's r0. Clobbers r0-r5."""
    return [
        ldxw(R3, R6, loc_offset),
        and64_imm(R3, 0xFFFF),
        add64_reg(R3, R6),
        mov64_reg(R1, out),
        add64_imm(R1, at),
        mov64_imm(R2, size),
        call(Helper.PROBE_READ_KERNEL_STR),
    ]


def exec_returned(maps: VforkMaps, load_ret: Sequence[Item]) -> list[Item]:
    """At execve's (or execveat's) exit, with the family's `load_ret` (the return value into
    r7): a failed exec released nothing, so the child's cause goes back to UNKNOWN; after a
    successful one, in the new program, the cause is final."""
    return [
        mov64_reg(R6, R1),
        *load_ret,
        *_child_release(maps, OUT),
        jeq_imm(R7, 0, "released"),
        stw(R0, CAUSE, Cause.UNKNOWN),
        ja(OUT),
        label("released"),
        ldxw(R1, R0, CAUSE),
        or64_imm(R1, RELEASED),
        stxw(R0, CAUSE, R1),
        label(OUT),
        mov64_imm(R0, 0),
        exit_(),
    ]


def release_at_exit(maps: VforkMaps, match: Sequence[Item], args: SyscallArgs) -> list[Item]:
    """At exit_group's (or exit's) entry: the child notes its exit code, status & 0xff as the
    parent's wait will see it."""
    return [
        mov64_reg(R6, R1),
        *match,
        *_child_release(maps, OUT),
        mov64_reg(R7, R0),
        *load_args(args, 1, ARGS),
        ldxdw(R1, R10, ARGS.at(0)),
        and64_imm(R1, 0xFF),
        stw(R7, CAUSE, Cause.EXIT),
        stxw(R7, CODE, R1),
        label(OUT),
        mov64_imm(R0, 0),
        exit_(),
    ]


SIGKILL, SIGCHLD, SIGURG, SIGWINCH = 9, 17, 23, 28
TRACE_SIGNAL_IGNORED = 1  # signal_generate's result for a signal dropped at once


def _fatal_by_default(sig: Reg, skip: str) -> list[Item]:
    """Goto skip unless signal `sig` kills by default: 17-23 (SIGCHLD, SIGCONT, SIGSTOP,
    SIGTSTP, SIGTTIN, SIGTTOU, SIGURG) and SIGWINCH are ignored or stop. Clobbers r1."""
    return [
        jeq_imm(sig, SIGWINCH, skip),
        mov64_reg(R1, sig),
        sub64_imm(R1, SIGCHLD),
        jle_imm(R1, SIGURG - SIGCHLD, skip),  # unsigned: a signal below SIGCHLD wraps high
    ]


def note_signal(
    maps: VforkMaps, sig_offset: int, pid_offset: int, result_offset: int
) -> list[Item]:
    """On signal:signal_generate, in the sender: a child sent a signal that kills by default
    keeps it in its code, unless it is already exiting."""
    return [
        mov64_reg(R6, R1),
        ldxw(R1, R6, result_offset),
        jeq_imm(R1, TRACE_SIGNAL_IGNORED, OUT),
        ldxw(R7, R6, sig_offset),
        *_fatal_by_default(R7, OUT),
        ldxw(R1, R6, pid_offset),
        stxw(R10, CHILD, R1),
        *_release_of(maps, OUT),
        ldxw(R1, R0, CAUSE),
        jeq_imm(R1, Cause.EXIT, OUT),
        stxw(R0, CODE, R7),
        label(OUT),
        mov64_imm(R0, 0),
        exit_(),
    ]


def release_at_signal(maps: VforkMaps, sig_offset: int, handler_offset: int) -> list[Item]:
    """On signal:signal_deliver, which fires as a dequeued signal is acted on, before a fatal
    default action ends the task: a child that dies of it notes the signal. A SIGKILL keeps the
    signal note_signal saw, if any: the kernel delivers a fatal kill() as SIGKILL."""
    return [
        mov64_reg(R6, R1),
        ldxdw(R1, R6, handler_offset),
        jne_imm(R1, 0, OUT),  # a handler, or SIG_IGN: the child lives on
        ldxw(R7, R6, sig_offset),
        *_fatal_by_default(R7, OUT),
        *_child_release(maps, OUT),
        stw(R0, CAUSE, Cause.SIGNAL),
        jne_imm(R7, SIGKILL, "code"),
        ldxw(R1, R0, CODE),
        jne_imm(R1, 0, OUT),
        label("code"),
        stxw(R0, CODE, R7),
        label(OUT),
        mov64_imm(R0, 0),
        exit_(),
    ]


def hold_block(maps: VforkMaps, out: Reg, at: int, key: Slot, child: Slot) -> list[Item]:
    """At the parent's return, with the return value in r7 and the pid_tgid in slot `key`:
    write the BLOCK at `out` + at (`out` one of r6-r9) and forget the hold and the child.
    `child` is 4 bytes of stack. Clobbers r0-r5."""
    return scoped(
        "hold_block",
        [
            stdw(out, at, 0),  # hold_ns: held nothing
            stdw(out, at + 8 + CAUSE, 0),  # UNKNOWN, code 0
            stb(out, at + 8 + PATH, 0),
            jsle_imm(R7, 0, "done"),  # a failed call has no child
            *map_lookup(maps.holds_fd, key),
            jeq_imm(R0, 0, "done"),
            ldxdw(R1, R0, HOLD_START),
            stxdw(out, at, R1),
            call(Helper.KTIME_GET_NS),
            ldxdw(R1, out, at),
            sub64_reg(R0, R1),
            stxdw(out, at, R0),
            *map_delete(maps.holds_fd, key),
            stxw(R10, child, R7),
            *map_lookup(maps.children_fd, child),
            jeq_imm(R0, 0, "done"),
            mov64_reg(R3, R0),
            mov64_reg(R1, out),
            add64_imm(R1, at + 8),
            mov64_imm(R2, RELEASE.size),
            # from a map value into another: kernel memory the helper may read
            call(Helper.PROBE_READ_KERNEL),
            *map_delete(maps.children_fd, child),
            label("done"),
        ],
    )
