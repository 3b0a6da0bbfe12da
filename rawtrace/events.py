"""The event catalogue: one declaration per event, saying what it is called, its Tracee id, its
arguments and which programs feed it. Everything else (planning, attaching, decoding, output)
reads these declarations; adding an event means adding one here and its program builder."""

from __future__ import annotations

import struct
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Callable

from bpf_bytecode.programs.capture import ARG_SIZE, ARGV_MAX, PATH_SIZE, Capture, ExecStrings
from rawtrace.errors import RawtraceError
from rawtrace.event import ArgValue, kernel_string


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
class EventSpec:
    name: str
    event_id: int  # Tracee's id; for syscalls it is the x86-64 syscall number
    args: tuple[ArgSpec, ...]
    feed: SyscallFeed
    # the args' values from the return value and the record's tail (capture.py), which may
    # carry padding after what `capture` wrote
    decode_args: Callable[[int, bytes], tuple[ArgValue, ...]]
    description: str
    capture: Capture | None = None  # what the entry keeps for the tail; None: no tail


def _child_pid(ret: int, tail: bytes) -> tuple[ArgValue, ...]:
    return (ret if ret > 0 else 0,)


def _no_args(ret: int, tail: bytes) -> tuple[ArgValue, ...]:
    return ()


def _raw_layout(args: tuple[ArgSpec, ...]) -> struct.Struct:
    """The raw args, a u64 each; an int is the slot's low half, signed."""
    return struct.Struct("<" + "".join("i4x" if arg.type == "int" else "Q" for arg in args))


def _raw(args: tuple[ArgSpec, ...]) -> Callable[[int, bytes], tuple[ArgValue, ...]]:
    layout = _raw_layout(args)

    def decode(ret: int, tail: bytes) -> tuple[ArgValue, ...]:
        return tuple(layout.unpack_from(tail))

    return decode


_STRINGS_HEAD = struct.Struct("<II")  # argc, truncated


def _exec(
    strings: ExecStrings, args: tuple[ArgSpec, ...]
) -> Callable[[int, bytes], tuple[ArgValue, ...]]:
    """execve(at)'s values: its raw `args` but pathname, argv and envp, which become the strings
    (envp stays None: environments hold secrets, and rawtrace does not read them), and the
    truncation marker."""
    raw = _raw_layout(args)
    at = raw.size

    def decode(ret: int, tail: bytes) -> tuple[ArgValue, ...]:
        argc, truncated = _STRINGS_HEAD.unpack_from(tail, at)
        path = kernel_string(tail[at + 8 : at + 8 + PATH_SIZE])
        first = at + 8 + PATH_SIZE
        argv = tuple(
            kernel_string(tail[first + i * ARG_SIZE : first + (i + 1) * ARG_SIZE])
            for i in range(min(argc, ARGV_MAX))
        )
        values: list[ArgValue] = list(raw.unpack_from(tail))
        values[strings.path_arg] = path
        values[strings.argv_arg] = argv
        values[strings.argv_arg + 1] = None  # envp
        return (*values, truncated != 0)

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
_EXIT_ARGS = (ArgSpec("status", "int"),)

VFORK = EventSpec(
    name="vfork",
    event_id=58,
    args=_CHILD_PID,
    feed=SyscallFeed("vfork", skip_child_return=True),
    decode_args=_child_pid,
    description="vfork(): the parent's return, with the child's pid (0 on failure)",
)
FORK = EventSpec(
    name="fork",
    event_id=57,
    args=(),
    feed=SyscallFeed("fork", skip_child_return=True),
    decode_args=_no_args,
    description="fork(): the parent's return; the child's pid is the return value",
)
CLONE = EventSpec(
    name="clone",
    event_id=56,
    args=_CLONE_ARGS,
    feed=SyscallFeed("clone", skip_child_return=True),
    decode_args=_raw(_CLONE_ARGS),
    description="clone(): the parent's return; the child's tid is the return value",
    capture=Capture(arg_count=5),
)
CLONE3 = EventSpec(
    name="clone3",
    event_id=435,
    args=_CLONE3_ARGS,
    feed=SyscallFeed("clone3", skip_child_return=True),
    decode_args=_raw(_CLONE3_ARGS),
    description="clone3(): the parent's return; the child's tid is the return value",
    capture=Capture(arg_count=2),
)
EXECVE = EventSpec(
    name="execve",
    event_id=59,
    args=(*_EXECVE_ARGS, _TRUNCATED),
    feed=SyscallFeed("execve"),
    decode_args=_exec(_EXECVE, _EXECVE_ARGS),
    description="execve(): its return (0: the new program runs), with the path and argv "
    "read at entry",
    capture=Capture(arg_count=3, strings=_EXECVE),
)
EXECVEAT = EventSpec(
    name="execveat",
    event_id=322,
    args=(*_EXECVEAT_ARGS, _TRUNCATED),
    feed=SyscallFeed("execveat"),
    decode_args=_exec(_EXECVEAT, _EXECVEAT_ARGS),
    # On x86_64 the syscall tracepoints (and raw sys_exit) see a successful execveat return as
    # execve's (orig_ax is execve's number by then): only the kprobe families report it.
    description="execveat(): like execve, from a directory fd; its failures (and, with the "
    "kprobe families, its successes)",
    capture=Capture(arg_count=5, strings=_EXECVEAT),
)
EXIT = EventSpec(
    name="exit",
    event_id=60,
    args=_EXIT_ARGS,
    feed=SyscallFeed("exit_group", at_entry=True),
    decode_args=_raw(_EXIT_ARGS),
    description="a process ends: exit_group() (what exit() and _exit() call), with its status",
    capture=Capture(arg_count=1),
)

CATALOGUE: Mapping[str, EventSpec] = {
    spec.name: spec for spec in (FORK, VFORK, CLONE, CLONE3, EXECVE, EXECVEAT, EXIT)
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
