"""The vocabulary of arg kinds, and the record layout a declaration's kinds make.

Each kind knows three things: its bytes in the record's tail (`size`), what the BPF capture
does for it (`raw`: the next syscall arg's u64 slot; `capture`: a field of capture.py's,
written after the raw slots), and how it decodes (`reader`: a function of the return value
and the tail, giving one value per name of its field). A value that could not be read decodes
to None (JSON null), never to "".

    Int(width, signed)   a syscall arg, an integer of 1, 2, 4 or 8 bytes in its u64 slot
    Pointer, Bool        a syscall arg: an address (a number), a truth
    UserStr(arg, n)      the user string syscall arg `arg` points to, at most n bytes with
                         its NUL; its names: the string, then rawtrace's `truncated`
    ExecBlock(path, argv) execve's pathname (a user string of PATH_SIZE) and argv (a user
                         string array of ARGV_MAX x ARG_SIZE), or the kernel's copies
                         (exec_facts.py); names: path, argv, truncated
    FirstU64             the u64 the first arg points to (clone3's cl_args->flags)
    HoldBlock(flag)      rawtrace's vfork hold block (vfork.py's BLOCK): [vfork,] hold_ns,
                         released_by, exec_path, exit_code, signal_code
    ReturnPid            no bytes: the return value as a child's pid, 0 on failure
    WaitStatus, ExitGroupStatus   the exit event's u64: exit_code, signal_code, core_dumped

A Layout places the kinds' fields one after another: the offset, kind and size of every field
(`Layout.fields`), which the decoder reads (`Layout.decoder`) and the next issue's compiled
formatter will read too.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Callable, Protocol

from bpf_bytecode.programs.capture import (
    ARG_SIZE,
    ARGV_MAX,
    PATH_SIZE,
    TRUNCATED,
    TRUNCATED_PATH,
    UNAVAILABLE_ARGV,
    UNAVAILABLE_PATH,
    CaptureField,
    ExecStrings,
    FirstU64,
    UserString,
)
from bpf_bytecode.programs.vfork import BLOCK, PATH_UNAVAILABLE, RELEASED, Cause
from rawtrace.events.event import ArgValue, kernel_string

Reader = Callable[[int, bytes], tuple[ArgValue, ...]]  # (return value, tail) -> values
TRUNCATED_ARG_NAME = "truncated"  # rawtrace's own arg: a string of the event was cut

_INT_CODES = {1: "b", 2: "h", 4: "i", 8: "q"}


@dataclass(frozen=True)
class Int:
    """An integer of `width` bytes, the low ones of its u64 slot (little-endian)."""

    width: int = 8
    signed: bool = False
    size = 8
    raw = True
    capture = None

    def reader(self, at: int) -> Reader:
        code = _INT_CODES[self.width]
        layout = struct.Struct("<" + (code if self.signed else code.upper()))
        return lambda ret, tail: layout.unpack_from(tail, at)


@dataclass(frozen=True)
class Pointer:
    size = 8
    raw = True
    capture = None

    def reader(self, at: int) -> Reader:
        return Int(8, signed=False).reader(at)


@dataclass(frozen=True)
class Bool:
    size = 8
    raw = True
    capture = None

    def reader(self, at: int) -> Reader:
        number = Int(8).reader(at)
        return lambda ret, tail: (number(ret, tail)[0] != 0,)


_FLAGS = struct.Struct("<I")
_STRINGS_HEAD = struct.Struct("<II")  # argc, flags


@dataclass(frozen=True)
class UserStr:
    """With `kernel`, a kernel function's string arg (kprobe_event)."""

    arg: int
    length: int = PATH_SIZE
    kernel: bool = False
    raw = False

    @property
    def size(self) -> int:
        return self.capture.size

    @property
    def capture(self) -> CaptureField:
        return UserString(self.arg, self.length, self.kernel)

    def reader(self, at: int) -> Reader:
        def read(ret: int, tail: bytes) -> tuple[ArgValue, ...]:
            (flags,) = _FLAGS.unpack_from(tail, at)
            if flags & UNAVAILABLE_PATH:
                return (None, False)
            return (
                kernel_string(tail[at + 8 : at + 8 + self.length]),
                bool(flags & TRUNCATED_PATH),
            )

        return read


@dataclass(frozen=True)
class ExecBlock:
    path_arg: int
    argv_arg: int
    raw = False

    @property
    def capture(self) -> CaptureField:
        return ExecStrings(self.path_arg, self.argv_arg)

    @property
    def size(self) -> int:
        return self.capture.size

    def reader(self, at: int) -> Reader:
        first = at + 8 + PATH_SIZE

        def read(ret: int, tail: bytes) -> tuple[ArgValue, ...]:
            argc, flags = _STRINGS_HEAD.unpack_from(tail, at)
            path = None
            if not flags & UNAVAILABLE_PATH:
                path = kernel_string(tail[at + 8 : at + 8 + PATH_SIZE])
            argv = None
            if not flags & UNAVAILABLE_ARGV:
                argv = tuple(
                    kernel_string(tail[first + i * ARG_SIZE : first + (i + 1) * ARG_SIZE])
                    for i in range(min(argc, ARGV_MAX))
                )
            return (path, argv, flags & TRUNCATED != 0)

        return read


_FIRST_U64 = struct.Struct("<QQ")  # the value, whether it was read


@dataclass(frozen=True)
class FirstU64Kind:
    raw = False

    @property
    def capture(self) -> CaptureField:
        return FirstU64()

    @property
    def size(self) -> int:
        return self.capture.size

    def reader(self, at: int) -> Reader:
        def read(ret: int, tail: bytes) -> tuple[ArgValue, ...]:
            value, was_read = _FIRST_U64.unpack_from(tail, at)
            return (value if was_read else None,)

        return read


_RELEASED_BY = {
    Cause.UNKNOWN: "unknown",
    Cause.EXECVE: "execve",
    Cause.EXECVEAT: "execveat",
    Cause.EXIT: "exit",
    Cause.SIGNAL: "signal",
}
_BLOCK_HEAD = struct.Struct("<QIi")  # hold_ns, cause, code: BLOCK's fields, the path after
HOLD_NAMES = ("hold_ns", "released_by", "exec_path", "exit_code", "signal_code")


@dataclass(frozen=True)
class HoldBlock:
    """With `flag`, a first value says whether the call held its parent (clone's CLONE_VFORK)."""

    flag: bool = False
    size = BLOCK.size
    raw = False
    capture = None  # written at the parent's return (vfork.py's hold_block), not at entry

    def reader(self, at: int) -> Reader:
        def read(ret: int, tail: bytes) -> tuple[ArgValue, ...]:
            hold_ns, cause, code = _BLOCK_HEAD.unpack_from(tail, at)
            unread = cause & PATH_UNAVAILABLE
            cause &= ~(RELEASED | PATH_UNAVAILABLE)
            if hold_ns == 0:
                values: tuple[ArgValue, ...] = (None,) * len(HOLD_NAMES)
            else:
                path = None
                if cause in (Cause.EXECVE, Cause.EXECVEAT) and not unread:
                    path = kernel_string(tail[at + _BLOCK_HEAD.size : at + BLOCK.size])
                values = (
                    hold_ns,
                    _RELEASED_BY.get(cause, "unknown"),
                    path,
                    code if cause == Cause.EXIT else None,
                    code if cause == Cause.SIGNAL else None,
                )
            return (hold_ns != 0, *values) if self.flag else values

        return read


@dataclass(frozen=True)
class ReturnPid:
    size = 0
    raw = False
    capture = None

    def reader(self, at: int) -> Reader:
        return lambda ret, tail: (ret if ret > 0 else 0,)


_STATUS = struct.Struct("<i4x")  # an int in a u64 slot


@dataclass(frozen=True)
class WaitStatus:
    """task->exit_code, a wait status: the code << 8, or the signal | 0x80 (core dump)."""

    size = 8
    raw = False
    capture = None  # process_exit.py writes it

    def reader(self, at: int) -> Reader:
        def read(ret: int, tail: bytes) -> tuple[ArgValue, ...]:
            (status,) = _STATUS.unpack_from(tail, at)
            return ((status >> 8) & 0xFF, status & 0x7F, bool(status & 0x80))

        return read


@dataclass(frozen=True)
class ExitGroupStatus:
    """exit_group()'s argument: the parent sees its low byte. No signal is seen this way:
    signal_code -1 and core_dumped None say so."""

    size = 8
    raw = True
    capture = None

    def reader(self, at: int) -> Reader:
        def read(ret: int, tail: bytes) -> tuple[ArgValue, ...]:
            (status,) = _STATUS.unpack_from(tail, at)
            return (status & 0xFF, -1, None)

        return read


class Kind(Protocol):
    """What every kind knows: its bytes in the tail, whether the syscall entry copies it as the
    next arg's u64 slot, the capture field it asks for after the raw slots, its reader."""

    @property
    def size(self) -> int: ...

    @property
    def raw(self) -> bool: ...

    @property
    def capture(self) -> CaptureField | None: ...

    def reader(self, at: int) -> Reader: ...


@dataclass(frozen=True)
class Field:
    """A kind in a declaration, and the args its values go to (none: kept, not shown)."""

    kind: Kind
    names: tuple[str, ...] = ()


@dataclass(frozen=True)
class Placed:
    """A field at its offset in the tail."""

    offset: int
    size: int
    kind: Kind
    names: tuple[str, ...]


@dataclass(frozen=True)
class Layout:
    """Where each field of a record's tail lies: raw slots first, then captured fields, then
    what the return adds."""

    fields: tuple[Placed, ...]

    @classmethod
    def of(cls, fields: Sequence[Field]) -> Layout:
        placed, at = [], 0
        for field in fields:
            placed.append(Placed(at, field.kind.size, field.kind, field.names))
            at += field.kind.size
        return cls(tuple(placed))

    @property
    def size(self) -> int:
        return sum(field.size for field in self.fields)

    @property
    def raw_count(self) -> int:
        """The leading raw slots: the syscall args the entry copies."""
        count = 0
        for field in self.fields:
            if not field.kind.raw:
                break
            count += 1
        return count

    @property
    def captured(self) -> tuple[CaptureField, ...]:
        """The capture's fields after the raw slots, in order."""
        return tuple(f.kind.capture for f in self.fields if f.kind.capture is not None)

    def decoder(self, names: Sequence[str]) -> Reader:
        """The values of the args `names`, in order, from a record's return value and tail;
        None for an arg no field gives (read nowhere). `truncated` is true when any field
        says so."""
        index = {name: i for i, name in enumerate(names)}
        parts = [
            (field.kind.reader(field.offset), tuple(index[name] for name in field.names))
            for field in self.fields
            if field.names
        ]
        count = len(names)
        cut = index.get(TRUNCATED_ARG_NAME)
        if not parts:
            return lambda ret, tail: (None,) * count
        if cut is None and [slot for _, slots in parts for slot in slots] == list(range(count)):
            # the fields give the args in order, each once: their values, joined
            readers = [read for read, _ in parts]
            return lambda ret, tail: tuple(v for read in readers for v in read(ret, tail))

        def decode(ret: int, tail: bytes) -> tuple[ArgValue, ...]:
            values: list[ArgValue] = [None] * count
            truncated = False
            for read, slots in parts:
                for slot, value in zip(slots, read(ret, tail)):
                    if slot == cut:
                        truncated = truncated or bool(value)
                    else:
                        values[slot] = value
            if cut is not None:
                values[cut] = truncated
            return tuple(values)

        return decode
