"""What an event declaration is: its name, Tracee id, feed, args and the kinds of its record's
tail (rawtrace/events/arg_kinds.py), from which its layout, its capture and its decoding follow.

`syscall_event` turns a syscall's C prototype into a declaration: each arg's C type picks its
kind (a string for `const char*`, a pointer for any other `*`, an integer of the type's width).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property

from bpf_bytecode.programs.capture import Capture, CloneFlags
from bpf_bytecode.programs.vfork import HeldWhen
from kernel_compat import FeatureMissing, syscall_table
from rawtrace.errors import RawtraceError
from rawtrace.events.arg_kinds import (
    TRUNCATED_ARG_NAME,
    Bool,
    Field,
    Int,
    Kind,
    Layout,
    Pointer,
    Reader,
    UserStr,
)

# Tracee's id of a syscall event is the syscall's x86_64 number, whatever the machine; an event
# fed only by a tracepoint keeps an id of its own.
TRACEE_IDS = syscall_table("x86_64")


@dataclass(frozen=True)
class ArgSpec:
    name: str
    type: str


@dataclass(frozen=True)
class SyscallFeed:
    """Fed by the syscall's enter and exit: the exit sends the record with the return value.

    `skip_child_return` drops returns of 0, which for fork-like calls are the child's own.
    `at_entry` sends the record at entry, for a call that never returns (exit_group).
    `stand_in`: where the architecture has no such syscall, the clone calls that do its work
    (kernel_compat's `done_by`, rawtrace/events/stand_ins.py).
    """

    syscall: str
    skip_child_return: bool = False
    at_entry: bool = False
    stand_in: CloneFlags | None = None


@dataclass(frozen=True)
class TracepointFeed:
    """Fed by a kernel tracepoint (tracefs events/<category>/<name>) whatever the attach family
    (rawtrace/events/tracepoint_fed.py), its record's tail made of `fields`. An event with a
    syscall feed too takes the tracepoint where its program can read the task (BTF), else the
    syscall; one without serves from the tracepoint always."""

    category: str
    name: str
    fields: tuple[Field, ...]


@dataclass(frozen=True)
class KprobeFeed:
    """Fed by a kprobe at the entry of kernel function `symbol` (through the kprobe PMU,
    whatever the trace's attach family), its args from the function's argument registers; the
    record is sent there (return value 0)."""

    symbol: str


@dataclass(frozen=True)
class StallFeed:
    """Fed in user space by the stall alarm (rawtrace/events/stalls.py), which scans the vfork
    holds map that the holding calls' programs fill: tracing it traces them too."""


@dataclass(frozen=True)
class EventSpec:
    name: str
    event_id: int  # Tracee's id; for syscalls it is the x86-64 syscall number
    args: tuple[ArgSpec, ...]
    feed: SyscallFeed | KprobeFeed | StallFeed | None  # None: only its tracepoint feeds it
    # its record's tail, as kinds: the syscall's raw args first, then what the entry captures,
    # then what the return adds (a holding call's BLOCK)
    fields: tuple[Field, ...]
    description: str
    # a call that can hold its parent until the child execs or exits (vfork.py)
    holds: HeldWhen | None = None
    # where the kernel has BTF (or where it has no syscall feed), a tracepoint feeds the event
    tracepoint: TracepointFeed | None = None

    @cached_property
    def layout(self) -> Layout:
        """The offset, kind and size of every field of the tail."""
        return Layout.of(self.fields)

    @property
    def tail_size(self) -> int:
        """The bytes its records carry after the fixed record (padding aside)."""
        return self.layout.size

    @cached_property
    def capture(self) -> Capture | None:
        """What the syscall entry keeps for the tail; None: no tail."""
        if not self.fields:
            return None
        return Capture(self.layout.raw_count, self.layout.captured)

    @cached_property
    def decode_args(self) -> Reader:
        """The args' values from the return value and the record's tail."""
        return self.layout.decoder([arg.name for arg in self.args])

    @cached_property
    def tracepoint_decode_args(self) -> Reader:
        """The same, from a record its tracepoint sent."""
        if self.tracepoint is None:
            raise ValueError(f"{self.name} has no tracepoint feed")
        return Layout.of(self.tracepoint.fields).decoder([arg.name for arg in self.args])

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


# The integer C types a declaration may name: (bytes, signed)
_INTS = {
    "char": (1, True),
    "unsigned char": (1, False),
    "short": (2, True),
    "unsigned short": (2, False),
    "int": (4, True),
    "unsigned int": (4, False),
    "long": (8, True),
    "unsigned long": (8, False),
    "long long": (8, True),
    "unsigned long long": (8, False),
    "pid_t": (4, True),
    "uid_t": (4, False),
    "gid_t": (4, False),
    "mode_t": (4, False),
    "size_t": (8, False),
    "ssize_t": (8, True),
    "off_t": (8, True),
    **{f"u{bits}": (bits // 8, False) for bits in (8, 16, 32, 64)},
    **{f"s{bits}": (bits // 8, True) for bits in (8, 16, 32, 64)},
}
STRING_TYPES = ("const char*", "char*")


def kind_of(c_type: str) -> Kind:
    """The kind a syscall arg of `c_type` is read as (a string's takes its place after)."""
    spelled = " ".join(c_type.replace("*", " * ").split()).replace(" *", "*")
    if spelled in ("bool", "_Bool"):
        return Bool()
    if spelled.endswith("*"):
        return Pointer()
    if spelled in _INTS:
        size, signed = _INTS[spelled]
        return Int(size, signed)
    raise RawtraceError(
        f"unknown C type {c_type!r}",
        f"use a pointer (T*), a string (const char*), bool or one of {', '.join(_INTS)}",
    )


def syscall_fields(args: Sequence[ArgSpec], kernel: bool = False) -> tuple[Field, ...]:
    """The fields of a syscall's args (with `kernel`, a kernel function's): a raw slot each,
    then each string arg's string (its raw slot is kept, unnamed)."""
    raw: list[Field] = []
    strings: list[Field] = []
    for i, arg in enumerate(args):
        kind = kind_of(arg.type)
        if " ".join(arg.type.split()).replace(" *", "*") in STRING_TYPES:
            raw.append(Field(kind))
            strings.append(Field(UserStr(i, kernel=kernel), (arg.name, TRUNCATED_ARG_NAME)))
        else:
            raw.append(Field(kind, (arg.name,)))
    return (*raw, *strings)


def syscall_event(
    name: str,
    args: Sequence[tuple[str, str]] = (),
    *,
    description: str = "",
) -> EventSpec:
    """An event on syscall `name`: its record at the call's return, with `args` as
    (name, C type) in the syscall's order (the first ones may do) read at entry. A string arg
    (`const char*`) is read up to 255 bytes; `truncated` says one was cut, and one that could
    not be read is None. Its id is Tracee's (the x86_64 number)."""
    if len(args) > 6:
        raise RawtraceError(f"{name} declared with {len(args)} args", "a syscall has at most 6")
    try:
        event_id = TRACEE_IDS.number(name)
    except FeatureMissing as exc:
        raise RawtraceError(
            f"no syscall number for {name!r}: {exc}",
            "add it to kernel_compat/arch/syscall_tables.py (each architecture's table)",
        ) from exc
    specs = tuple(ArgSpec(arg_name, c_type) for arg_name, c_type in args)
    fields = syscall_fields(specs)
    if any(isinstance(field.kind, UserStr) for field in fields):
        specs += (ArgSpec(TRUNCATED_ARG_NAME, "bool"),)
    return EventSpec(
        name=name,
        event_id=event_id,
        args=specs,
        feed=SyscallFeed(name),
        fields=fields,
        description=description or f"{name}(): its return, with its args read at entry",
    )


KPROBE_IDS = 70_000  # rawtrace's own ids of declared kprobe events, one per symbol
_kprobe_ids: dict[str, int] = {}


def kprobe_event(
    symbol: str, args: Sequence[tuple[str, str]] = (), *, description: str = ""
) -> EventSpec:
    """An event at the entry of kernel function `symbol`, with `args` as (name, C type) in
    the function's order, read from its argument registers (a `const char*` from kernel
    memory). Needs kprobes (CONFIG_KPROBES) and the kprobe PMU (4.17); a kernel without them
    refuses the trace, saying so. Its id is rawtrace's own, one per symbol in this process."""
    if len(args) > 6:
        raise RawtraceError(
            f"{symbol} declared with {len(args)} args", "at most 6 are read from registers"
        )
    specs = tuple(ArgSpec(arg_name, c_type) for arg_name, c_type in args)
    fields = syscall_fields(specs, kernel=True)
    if any(isinstance(field.kind, UserStr) for field in fields):
        specs += (ArgSpec(TRUNCATED_ARG_NAME, "bool"),)
    return EventSpec(
        name=symbol,
        event_id=_kprobe_ids.setdefault(symbol, KPROBE_IDS + len(_kprobe_ids)),
        args=specs,
        feed=KprobeFeed(symbol),
        fields=fields,
        description=description or f"the entry of kernel function {symbol}",
    )
