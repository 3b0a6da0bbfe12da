"""The event catalogue: one declaration per event, saying what it is called, its Tracee id, its
arguments and which programs feed it. Everything else (planning, attaching, decoding, output)
reads these declarations; adding an event means adding one here and its program builder."""

from __future__ import annotations

import struct
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Callable

from bpf_bytecode.programs.capture import (
    ARG_SIZE,
    ARGV_MAX,
    PATH_SIZE,
    TRUNCATED,
    UNAVAILABLE_ARGV,
    UNAVAILABLE_PATH,
    Capture,
    ExecStrings,
)
from bpf_bytecode.programs.syscall import tail_size
from bpf_bytecode.programs.vfork import BLOCK, PATH_UNAVAILABLE, RELEASED, Cause, HeldWhen
from kernel_compat import syscall_table
from rawtrace.errors import RawtraceError
from rawtrace.events.event import ArgValue, kernel_string

# Tracee's id of a syscall event is the syscall's x86_64 number, whatever the machine; an event
# fed only by a tracepoint keeps an id of its own.
_TRACEE_IDS = syscall_table("x86_64")


@dataclass(frozen=True)
class ArgSpec:
    name: str
    type: str


@dataclass(frozen=True)
class SyscallFeed:
    """Fed by the syscall's enter and exit: the exit sends the record with the return value.

    `skip_child_return` drops returns of 0, which for fork-like calls are the child's own.
    `at_entry` sends the record at entry, for a call that never returns (exit_group).
    """

    syscall: str
    skip_child_return: bool = False
    at_entry: bool = False


@dataclass(frozen=True)
class TracepointFeed:
    """Fed by a kernel tracepoint (tracefs events/<category>/<name>) whatever the attach family
    (rawtrace/events/tracepoint_fed.py). Its records' tail decodes with `decode_args`. An event
    with a syscall feed too takes the tracepoint where its program can read the task (BTF),
    else the syscall; one without serves from the tracepoint always."""

    category: str
    name: str
    decode_args: Callable[[int, bytes], tuple[ArgValue, ...]]


@dataclass(frozen=True)
class StallFeed:
    """Fed in user space by the stall alarm (rawtrace/events/stalls.py), which scans the vfork
    holds map that the holding calls' programs fill: tracing it traces them too."""


@dataclass(frozen=True)
class EventSpec:
    name: str
    event_id: int  # Tracee's id; for syscalls it is the x86-64 syscall number
    args: tuple[ArgSpec, ...]
    feed: SyscallFeed | StallFeed | None  # None: only its tracepoint feeds it
    # the args' values from the return value and the record's tail (capture.py), which may
    # carry padding after what `capture` wrote
    decode_args: Callable[[int, bytes], tuple[ArgValue, ...]]
    description: str
    capture: Capture | None = None  # what the entry keeps for the tail; None: no tail
    # a call that can hold its parent until the child execs or exits (vfork.py): its tail
    # ends with the hold time and what released the parent
    holds: HeldWhen | None = None

    @property
    def syscall_feed(self) -> SyscallFeed:
        """Its syscall feed; a ValueError for an event only a tracepoint feeds."""
        if not isinstance(self.feed, SyscallFeed):
            raise ValueError(f"{self.name} has no syscall feed")
        return self.feed

    @property
    def in_kernel(self) -> bool:
        """Its records come from the kernel's programs (not from user space's stall alarm)."""
        return not isinstance(self.feed, StallFeed)

    @property
    def tail_size(self) -> int:
        """The bytes its records carry after the fixed record (padding aside)."""
        return 0 if self.capture is None else tail_size(self.capture, self.holds is not None)

    # where the kernel has BTF, a tracepoint feeds the event instead of `feed`
    tracepoint: TracepointFeed | None = None


def _no_args(ret: int, tail: bytes) -> tuple[ArgValue, ...]:
    return ()


def _raw_layout(args: tuple[ArgSpec, ...]) -> struct.Struct:
    """The raw args, a u64 each; an int is the slot's low half, signed."""
    return struct.Struct("<" + "".join("i4x" if arg.type == "int" else "Q" for arg in args))


_STRINGS_HEAD = struct.Struct("<II")  # argc, flags


def _exec(
    strings: ExecStrings, args: tuple[ArgSpec, ...]
) -> Callable[[int, bytes], tuple[ArgValue, ...]]:
    """execve(at)'s values: its raw `args` but pathname, argv and envp, which become the strings
    (envp stays None: environments hold secrets, and rawtrace does not read them), and the
    truncation marker. A string whose read faulted is None: unavailable, not empty."""
    raw = _raw_layout(args)
    at = raw.size

    def decode(ret: int, tail: bytes) -> tuple[ArgValue, ...]:
        argc, flags = _STRINGS_HEAD.unpack_from(tail, at)
        values: list[ArgValue] = list(raw.unpack_from(tail))
        values[strings.path_arg] = _exec_path(tail, at, flags)
        values[strings.argv_arg] = _exec_argv(tail, at, argc, flags)
        values[strings.argv_arg + 1] = None  # envp
        return (*values, flags & TRUNCATED != 0)

    return decode


def _exec_path(tail: bytes, at: int, flags: int) -> str | None:
    """The pathname of the exec strings block at `at`, None where it could not be read."""
    if flags & UNAVAILABLE_PATH:
        return None
    return kernel_string(tail[at + 8 : at + 8 + PATH_SIZE])


def _exec_argv(tail: bytes, at: int, argc: int, flags: int) -> tuple[str, ...] | None:
    """The argv of the exec strings block at `at`, None where it could not be read."""
    if flags & UNAVAILABLE_ARGV:
        return None
    first = at + 8 + PATH_SIZE
    return tuple(
        kernel_string(tail[first + i * ARG_SIZE : first + (i + 1) * ARG_SIZE])
        for i in range(min(argc, ARGV_MAX))
    )


# rawtrace's own, after a holding call's args: how long the parent was suspended, what
# released it, and that release's path, exit code or signal (None where it does not apply)
_HOLD_ARGS = (
    ArgSpec("hold_ns", "u64"),
    ArgSpec("released_by", "const char*"),
    ArgSpec("exec_path", "const char*"),
    ArgSpec("exit_code", "int"),
    ArgSpec("signal_code", "int"),
)
_RELEASED_BY = {
    Cause.UNKNOWN: "unknown",
    Cause.EXECVE: "execve",
    Cause.EXECVEAT: "execveat",
    Cause.EXIT: "exit",
    Cause.SIGNAL: "signal",
}
_BLOCK_HEAD = struct.Struct("<QIi")  # hold_ns, cause, code: BLOCK's fields, the path after


def _hold(block: bytes, at: int) -> tuple[ArgValue, ...]:
    """The _HOLD_ARGS from the BLOCK at `at`; all None for a call that held nothing."""
    hold_ns, cause, code = _BLOCK_HEAD.unpack_from(block, at)
    unread = cause & PATH_UNAVAILABLE
    cause &= ~(RELEASED | PATH_UNAVAILABLE)
    if hold_ns == 0:
        return (None,) * len(_HOLD_ARGS)
    path = None
    if cause in (Cause.EXECVE, Cause.EXECVEAT) and not unread:
        path = kernel_string(block[at + _BLOCK_HEAD.size : at + BLOCK.size])
    return (
        hold_ns,
        _RELEASED_BY.get(cause, "unknown"),
        path,
        code if cause == Cause.EXIT else None,
        code if cause == Cause.SIGNAL else None,
    )


def _vfork(ret: int, tail: bytes) -> tuple[ArgValue, ...]:
    return (ret if ret > 0 else 0, *_hold(tail, 0))


_FIRST_U64 = struct.Struct("<QQ")  # capture.py's first_u64: the value, whether it was read


def _clone(
    args: tuple[ArgSpec, ...], first_u64: bool = False
) -> Callable[[int, bytes], tuple[ArgValue, ...]]:
    """clone(3)'s raw args, with `first_u64` the u64 its first arg points to (clone3's flags,
    None where unread), whether it held its parent (CLONE_VFORK), and the hold."""
    layout = _raw_layout(args)
    hold_at = layout.size + (_FIRST_U64.size if first_u64 else 0)

    def decode(ret: int, tail: bytes) -> tuple[ArgValue, ...]:
        hold = _hold(tail, hold_at)
        pointed: tuple[ArgValue, ...] = ()
        if first_u64:
            value, read = _FIRST_U64.unpack_from(tail, layout.size)
            pointed = (value if read else None,)
        return (*layout.unpack_from(tail), *pointed, hold[0] is not None, *hold)

    return decode


_CHILD_PID = (ArgSpec("pid", "pid_t"),)
_CLONE_ARGS: tuple[ArgSpec, ...] = (
    ArgSpec("flags", "unsigned long"),
    ArgSpec("stack", "void*"),
    ArgSpec("parent_tid", "int*"),
    ArgSpec("child_tid", "int*"),
    ArgSpec("tls", "unsigned long"),
)
_EXECVE = ExecStrings(path_arg=0, argv_arg=1)
_EXECVEAT = ExecStrings(path_arg=1, argv_arg=2)
# rawtrace's own: whether the pathname or an argv string was cut, or argv had more strings
# than the record keeps (capture.py: PATH_SIZE, ARG_SIZE, ARGV_MAX)
_TRUNCATED = ArgSpec("truncated", "bool")
_EXECVE_ARGS = (
    ArgSpec("pathname", "const char*"),
    ArgSpec("argv", "const char*const*"),
    ArgSpec("envp", "const char*const*"),
)
_EXECVEAT_ARGS = (
    ArgSpec("dirfd", "int"),
    *_EXECVE_ARGS,
    ArgSpec("flags", "int"),
)
_CLONE3_ARGS = (ArgSpec("cl_args", "struct clone_args*"), ArgSpec("size", "size_t"))
# rawtrace's own: cl_args->flags, read at entry, so that a thread (CLONE_THREAD) can be told
# from a process; null where it could not be read
_CLONE3_FLAGS = ArgSpec("flags", "u64")
# rawtrace's own: the call had CLONE_VFORK, so the hold args that follow apply
_VFORK_FLAG = ArgSpec("vfork", "bool")
# Tracee's sched_process_exit args, and rawtrace's own core_dumped
_EXIT_ARGS = (
    ArgSpec("exit_code", "int"),
    ArgSpec("signal_code", "int"),
    ArgSpec("core_dumped", "bool"),
)
_EXIT_STATUS = struct.Struct("<i4x")  # an int in a u64 slot (process_exit.py's tail is one too)


def _wait_status(ret: int, tail: bytes) -> tuple[ArgValue, ...]:
    """From task->exit_code, a wait status: the code << 8, or the signal | 0x80 (core dump)."""
    (status,) = _EXIT_STATUS.unpack_from(tail)
    return ((status >> 8) & 0xFF, status & 0x7F, bool(status & 0x80))


def _exit_group_status(ret: int, tail: bytes) -> tuple[ArgValue, ...]:
    """From exit_group()'s argument: the parent sees its low byte. No signal is seen this way:
    signal_code -1 and core_dumped None say so."""
    (status,) = _EXIT_STATUS.unpack_from(tail)
    return (status & 0xFF, -1, None)


VFORK = EventSpec(
    name="vfork",
    event_id=_TRACEE_IDS.number("vfork"),
    args=(*_CHILD_PID, *_HOLD_ARGS),
    feed=SyscallFeed("vfork", skip_child_return=True),
    decode_args=_vfork,
    description="vfork(): the parent's return, with the child's pid (0 on failure), how long "
    "the parent was held, and what released it: the child's execve (path) or exit (code, "
    "signal)",
    capture=Capture(),
    holds=HeldWhen.ALWAYS,
)
FORK = EventSpec(
    name="fork",
    event_id=_TRACEE_IDS.number("fork"),
    args=(),
    feed=SyscallFeed("fork", skip_child_return=True),
    decode_args=_no_args,
    description="fork(): the parent's return; the child's pid is the return value",
)
CLONE = EventSpec(
    name="clone",
    event_id=_TRACEE_IDS.number("clone"),
    args=(*_CLONE_ARGS, _VFORK_FLAG, *_HOLD_ARGS),
    feed=SyscallFeed("clone", skip_child_return=True),
    decode_args=_clone(_CLONE_ARGS),
    description="clone(): the parent's return; the child's tid is the return value; with "
    "CLONE_VFORK (posix_spawn) also vfork's hold time and release",
    capture=Capture(arg_count=5),
    holds=HeldWhen.CLONE_FLAGS,
)
CLONE3 = EventSpec(
    name="clone3",
    event_id=_TRACEE_IDS.number("clone3"),
    args=(*_CLONE3_ARGS, _CLONE3_FLAGS, _VFORK_FLAG, *_HOLD_ARGS),
    feed=SyscallFeed("clone3", skip_child_return=True),
    decode_args=_clone(_CLONE3_ARGS, first_u64=True),
    description="clone3(): the parent's return; the child's tid is the return value; its "
    "cl_args->flags (CLONE_THREAD: a thread); with CLONE_VFORK (posix_spawn) also vfork's "
    "hold time and release",
    capture=Capture(arg_count=2, first_u64=True),
    holds=HeldWhen.CLONE_ARGS,
)
EXECVE = EventSpec(
    name="execve",
    event_id=_TRACEE_IDS.number("execve"),
    args=(*_EXECVE_ARGS, _TRUNCATED),
    feed=SyscallFeed("execve"),
    decode_args=_exec(_EXECVE, _EXECVE_ARGS),
    description="execve(): its return (0: the new program runs), with the path and argv "
    "read at entry",
    capture=Capture(arg_count=3, strings=_EXECVE),
)
EXECVEAT = EventSpec(
    name="execveat",
    event_id=_TRACEE_IDS.number("execveat"),
    args=(*_EXECVEAT_ARGS, _TRUNCATED),
    feed=SyscallFeed("execveat"),
    decode_args=_exec(_EXECVEAT, _EXECVEAT_ARGS),
    # On x86_64 the syscall tracepoints (and raw sys_exit) see a successful execveat return as
    # execve's: the families hook that exit too (kernel_compat.arch.exits_seen_as).
    description="execveat(): like execve, from a directory fd; its return (0: the new "
    "program runs)",
    capture=Capture(arg_count=5, strings=_EXECVEAT),
)
# The id stays exit's (60) and the name "exit"; the args are Tracee's sched_process_exit's.
# Where the kernel has no BTF, task->exit_code cannot be read: exit_group()'s entry feeds the
# event instead, so deaths by signal go unseen (and the signal is unknown: -1).
EXIT = EventSpec(
    name="exit",
    event_id=_TRACEE_IDS.number("exit"),
    args=_EXIT_ARGS,
    feed=SyscallFeed("exit_group", at_entry=True),
    decode_args=_exit_group_status,
    description="a process ends (its last thread exits: exit, exit_group or a signal): "
    "exit_code, signal_code (0: none) and core_dumped, as its parent is told; without BTF "
    "only exit_group() calls, with signal_code -1",
    capture=Capture(arg_count=1),
    tracepoint=TracepointFeed("sched", "sched_process_exit", _wait_status),
)

# Tracee's sched_process_exec args (pkg/events/core.go), in its order and types; rawtrace reads
# cmdpath (the kernel's filename: the path as the exec was asked for) and argv, and the others
# are null (unread), then its own truncated
_SCHED_EXEC_ARGS = (
    ArgSpec("cmdpath", "string"),
    ArgSpec("pathname", "string"),
    ArgSpec("dev", "uint32"),
    ArgSpec("inode", "uint64"),
    ArgSpec("ctime", "uint64"),
    ArgSpec("inode_mode", "uint16"),
    ArgSpec("interpreter_pathname", "string"),
    ArgSpec("interpreter_dev", "uint32"),
    ArgSpec("interpreter_inode", "uint64"),
    ArgSpec("interpreter_ctime", "uint64"),
    ArgSpec("argv", "[]string"),
    ArgSpec("interp", "string"),
    ArgSpec("stdin_type", "uint16"),
    ArgSpec("stdin_path", "string"),
    ArgSpec("invoked_from_kernel", "bool"),
    ArgSpec("prev_comm", "string"),
    ArgSpec("env", "[]string"),
    ArgSpec("pwd", "string"),
)
_SCHED_EXEC_READ = {"cmdpath": 0, "argv": 10}


def _sched_exec(ret: int, tail: bytes) -> tuple[ArgValue, ...]:
    """The exec strings block (capture.py) at the tail's start, as Tracee's args."""
    argc, flags = _STRINGS_HEAD.unpack_from(tail)
    values: list[ArgValue] = [None] * len(_SCHED_EXEC_ARGS)
    values[_SCHED_EXEC_READ["cmdpath"]] = _exec_path(tail, 0, flags)
    values[_SCHED_EXEC_READ["argv"]] = _exec_argv(tail, 0, argc, flags)
    return (*values, flags & TRUNCATED != 0)


SCHED_PROCESS_EXEC = EventSpec(
    name="sched_process_exec",
    event_id=715,  # Tracee's SchedProcessExec (pkg/events/core.go: StartCommonID 700 + 15)
    args=(*_SCHED_EXEC_ARGS, _TRUNCATED),
    feed=None,
    decode_args=_sched_exec,
    description="a successful exec, in the new program (sched:sched_process_exec): cmdpath "
    "from the kernel's copy of the filename and, with BTF, argv from the new program's "
    "argument area; whatever page the caller's strings were in",
    capture=Capture(strings=ExecStrings(path_arg=0, argv_arg=1)),  # the strings block's size
    tracepoint=TracepointFeed("sched", "sched_process_exec", _sched_exec),
)

VFORK_STALL = EventSpec(
    name="vfork_stall",
    event_id=50_058,  # rawtrace's own: Tracee has none like it; above Tracee's ranges
    args=(ArgSpec("pid", "pid_t"), ArgSpec("held_ns", "u64"), ArgSpec("threshold_ns", "u64")),
    feed=StallFeed(),
    decode_args=_no_args,  # no record: the alarm builds the event
    description="a vfork (or CLONE_VFORK clone) whose child has held its parent --stall-ms N "
    "ms (default 1000) without exec or exit, reported while it still does; pid: the child "
    "(0: not seen yet); tracing it traces the holding calls",
)
HOLDING_CALLS = (VFORK, CLONE, CLONE3)  # what the stall alarm watches

CATALOGUE: Mapping[str, EventSpec] = {
    spec.name: spec
    for spec in (
        FORK,
        VFORK,
        CLONE,
        CLONE3,
        EXECVE,
        EXECVEAT,
        EXIT,
        SCHED_PROCESS_EXEC,
        VFORK_STALL,
    )
}
BY_ID: Mapping[int, EventSpec] = {spec.event_id: spec for spec in CATALOGUE.values()}


def lookup(names: str | list[str]) -> list[EventSpec]:
    """The specs for event names (a list, or one comma-separated string)."""
    wanted = names.split(",") if isinstance(names, str) else names
    specs = []
    for name in (n.strip() for n in wanted):
        if name not in CATALOGUE:
            known = ", ".join(sorted(CATALOGUE))
            raise RawtraceError(f"unknown event {name!r}", f"known events: {known}")
        specs.append(CATALOGUE[name])
    return specs
