"""The event catalogue: one declaration per event (rawtrace/events/declaring.py), saying what it
is called, its Tracee id, its feed, its args and the kinds of its record's tail
(rawtrace/events/arg_kinds.py). Everything else (planning, capturing, attaching, decoding, output)
reads these declarations. A syscall event whose args are plain C types is one `syscall_event`
line; its number goes in the architectures' tables (kernel_compat/arch/syscall_tables.py)."""

from __future__ import annotations

from collections.abc import Mapping

from bpf_bytecode.programs.capture import CLONE_THREAD, CLONE_VM, CloneFlags
from bpf_bytecode.programs.vfork import CLONE_VFORK, HeldWhen
from rawtrace.errors import RawtraceError
from rawtrace.events.arg_kinds import (
    HOLD_NAMES,
    TRUNCATED_ARG_NAME,
    ExecBlock,
    ExitGroupStatus,
    Field,
    FirstU64Kind,
    HoldBlock,
    ReturnPid,
    WaitStatus,
)
from rawtrace.events.declaring import (
    TRACEE_IDS,
    ArgSpec,
    EventSpec,
    StallFeed,
    SyscallFeed,
    TracepointFeed,
    kind_of,
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
# rawtrace's own: the call had CLONE_VFORK, so the hold args that follow apply
_VFORK_FLAG = ArgSpec("vfork", "bool")
# rawtrace's own: whether the pathname or an argv string was cut, or argv had more strings
# than the record keeps (capture.py: PATH_SIZE, ARG_SIZE, ARGV_MAX)
_TRUNCATED = ArgSpec(TRUNCATED_ARG_NAME, "bool")


def _raw(args: tuple[ArgSpec, ...], shown: bool = True) -> tuple[Field, ...]:
    """A raw slot for each arg, in its C type's kind; named after it where `shown`."""
    return tuple(Field(kind_of(arg.type), (arg.name,) if shown else ()) for arg in args)


def _held(flag: bool) -> Field:
    return Field(HoldBlock(flag), (*(("vfork",) if flag else ()), *HOLD_NAMES))


_CLONE_ARGS = (
    ArgSpec("flags", "unsigned long"),
    ArgSpec("stack", "void*"),
    ArgSpec("parent_tid", "int*"),
    ArgSpec("child_tid", "int*"),
    ArgSpec("tls", "unsigned long"),
)
_CLONE3_ARGS = (ArgSpec("cl_args", "struct clone_args*"), ArgSpec("size", "size_t"))
# rawtrace's own: cl_args->flags, read at entry, so that a thread (CLONE_THREAD) can be told
# from a process; null where it could not be read
_CLONE3_FLAGS = ArgSpec("flags", "u64")
_EXECVE_ARGS = (
    ArgSpec("pathname", "const char*"),
    ArgSpec("argv", "const char*const*"),
    ArgSpec("envp", "const char*const*"),
)
_EXECVEAT_DIRFD, _EXECVEAT_FLAGS = ArgSpec("dirfd", "int"), ArgSpec("flags", "int")
_EXEC_NAMES = ("pathname", "argv", TRUNCATED_ARG_NAME)
# Tracee's sched_process_exit args, and rawtrace's own core_dumped
_EXIT_ARGS = (
    ArgSpec("exit_code", "int"),
    ArgSpec("signal_code", "int"),
    ArgSpec("core_dumped", "bool"),
)
_EXIT_NAMES = tuple(arg.name for arg in _EXIT_ARGS)

VFORK = EventSpec(
    name="vfork",
    event_id=TRACEE_IDS.number("vfork"),
    args=(ArgSpec("pid", "pid_t"), *_HOLD_ARGS),
    feed=SyscallFeed("vfork", skip_child_return=True, stand_in=CloneFlags(required=CLONE_VFORK)),
    fields=(Field(ReturnPid(), ("pid",)), _held(flag=False)),
    description="vfork(): the parent's return, with the child's pid (0 on failure), how long "
    "the parent was held, and what released it: the child's execve (path) or exit (code, "
    "signal)",
    holds=HeldWhen.ALWAYS,
)
FORK = EventSpec(
    name="fork",
    event_id=TRACEE_IDS.number("fork"),
    args=(),
    feed=SyscallFeed(
        "fork", skip_child_return=True, stand_in=CloneFlags(forbidden=CLONE_VM | CLONE_THREAD)
    ),
    fields=(),
    description="fork(): the parent's return; the child's pid is the return value",
)
CLONE = EventSpec(
    name="clone",
    event_id=TRACEE_IDS.number("clone"),
    args=(*_CLONE_ARGS, _VFORK_FLAG, *_HOLD_ARGS),
    feed=SyscallFeed("clone", skip_child_return=True),
    fields=(*_raw(_CLONE_ARGS), _held(flag=True)),
    description="clone(): the parent's return; the child's tid is the return value; with "
    "CLONE_VFORK (posix_spawn) also vfork's hold time and release",
    holds=HeldWhen.CLONE_FLAGS,
)
CLONE3 = EventSpec(
    name="clone3",
    event_id=TRACEE_IDS.number("clone3"),
    args=(*_CLONE3_ARGS, _CLONE3_FLAGS, _VFORK_FLAG, *_HOLD_ARGS),
    feed=SyscallFeed("clone3", skip_child_return=True),
    fields=(*_raw(_CLONE3_ARGS), Field(FirstU64Kind(), ("flags",)), _held(flag=True)),
    description="clone3(): the parent's return; the child's tid is the return value; its "
    "cl_args->flags (CLONE_THREAD: a thread); with CLONE_VFORK (posix_spawn) also vfork's "
    "hold time and release",
    holds=HeldWhen.CLONE_ARGS,
)
# execve's pathname and argv are strings (envp stays None: environments hold secrets, and
# rawtrace does not read them): their raw slots are kept unnamed
EXECVE = EventSpec(
    name="execve",
    event_id=TRACEE_IDS.number("execve"),
    args=(*_EXECVE_ARGS, _TRUNCATED),
    feed=SyscallFeed("execve"),
    fields=(*_raw(_EXECVE_ARGS, shown=False), Field(ExecBlock(0, 1), _EXEC_NAMES)),
    description="execve(): its return (0: the new program runs), with the path and argv "
    "read at entry",
)
EXECVEAT = EventSpec(
    name="execveat",
    event_id=TRACEE_IDS.number("execveat"),
    args=(_EXECVEAT_DIRFD, *_EXECVE_ARGS, _EXECVEAT_FLAGS, _TRUNCATED),
    feed=SyscallFeed("execveat"),
    fields=(
        *_raw((_EXECVEAT_DIRFD,)),
        *_raw(_EXECVE_ARGS, shown=False),
        *_raw((_EXECVEAT_FLAGS,)),
        Field(ExecBlock(1, 2), _EXEC_NAMES),
    ),
    # On x86_64 the syscall tracepoints (and raw sys_exit) see a successful execveat return as
    # execve's: the families hook that exit too (kernel_compat.arch.exits_seen_as).
    description="execveat(): like execve, from a directory fd; its return (0: the new "
    "program runs)",
)
# The id stays exit's (60) and the name "exit"; the args are Tracee's sched_process_exit's.
# Where the kernel has no BTF, task->exit_code cannot be read: exit_group()'s entry feeds the
# event instead, so deaths by signal go unseen (and the signal is unknown: -1).
EXIT = EventSpec(
    name="exit",
    event_id=TRACEE_IDS.number("exit"),
    args=_EXIT_ARGS,
    feed=SyscallFeed("exit_group", at_entry=True),
    fields=(Field(ExitGroupStatus(), _EXIT_NAMES),),
    description="a process ends (its last thread exits: exit, exit_group or a signal): "
    "exit_code, signal_code (0: none) and core_dumped, as its parent is told; without BTF "
    "only exit_group() calls, with signal_code -1",
    tracepoint=TracepointFeed("sched", "sched_process_exit", (Field(WaitStatus(), _EXIT_NAMES),)),
)

# Tracee's sched_process_exec args (pkg/events/core.go), in its order and types; rawtrace reads
# cmdpath (the kernel's filename: the path as the exec was asked for) and argv, and the others
# are null (unread), then its own truncated
_SCHED_EXEC_ARGS = tuple(
    ArgSpec(name, c_type)
    for name, c_type in (
        ("cmdpath", "string"),
        ("pathname", "string"),
        ("dev", "uint32"),
        ("inode", "uint64"),
        ("ctime", "uint64"),
        ("inode_mode", "uint16"),
        ("interpreter_pathname", "string"),
        ("interpreter_dev", "uint32"),
        ("interpreter_inode", "uint64"),
        ("interpreter_ctime", "uint64"),
        ("argv", "[]string"),
        ("interp", "string"),
        ("stdin_type", "uint16"),
        ("stdin_path", "string"),
        ("invoked_from_kernel", "bool"),
        ("prev_comm", "string"),
        ("env", "[]string"),
        ("pwd", "string"),
    )
)
_SCHED_EXEC_FIELDS = (Field(ExecBlock(0, 1), ("cmdpath", "argv", TRUNCATED_ARG_NAME)),)
SCHED_PROCESS_EXEC = EventSpec(
    name="sched_process_exec",
    event_id=715,  # Tracee's SchedProcessExec (pkg/events/core.go: StartCommonID 700 + 15)
    args=(*_SCHED_EXEC_ARGS, _TRUNCATED),
    feed=None,
    fields=_SCHED_EXEC_FIELDS,  # exec_facts.exec_event writes the exec strings block
    description="a successful exec, in the new program (sched:sched_process_exec): cmdpath "
    "from the kernel's copy of the filename and, with BTF, argv from the new program's "
    "argument area; whatever page the caller's strings were in",
    tracepoint=TracepointFeed("sched", "sched_process_exec", _SCHED_EXEC_FIELDS),
)
VFORK_STALL = EventSpec(
    name="vfork_stall",
    event_id=50_058,  # rawtrace's own: Tracee has none like it; above Tracee's ranges
    args=(ArgSpec("pid", "pid_t"), ArgSpec("held_ns", "u64"), ArgSpec("threshold_ns", "u64")),
    feed=StallFeed(),
    fields=(),  # no record: the alarm builds the event
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
