"""Declaring an event on any kernel tracepoint: its args are the tracepoint's own fields, read
from its format file (tracefs events/<category>/<name>/format), and its program copies them
from the context (bpf_bytecode/programs/tracepoint_copy.py).

    an integer field (1, 2, 4, 8 bytes)   TpInt: its value, with the format's sign
    char NAME[N]                          TpChars: the text up to its first NUL
    __data_loc char[] NAME                TpString: the string, at most 255 bytes; `truncated`
    a pointer                             TpInt: its address, a number
    any other array                       left out

Such an event has an id of rawtrace's own, TRACEPOINT_IDS + the tracepoint's id on this boot
(Tracee's ids name only the tracepoints Tracee declares), and is fed by its tracepoint whatever
the attach family, with or without BTF.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from bpf_bytecode.programs.capture import PATH_SIZE, TRUNCATED_PATH, UNAVAILABLE_PATH
from bpf_bytecode.programs.tracepoint_copy import CtxCopy, CtxField, CtxString
from kernel_compat import KernelFactError, TracepointField, read_tracepoint_format
from rawtrace.errors import RawtraceError
from rawtrace.events.arg_kinds import TRUNCATED_ARG_NAME, Field, Reader
from rawtrace.events.declaring import ArgSpec, EventSpec, TracepointFeed
from rawtrace.events.event import ArgValue, kernel_string
from rawtrace.kernel.tracefs_mount import ensure_tracefs

TRACEPOINT_IDS = 60_000  # above Tracee's ranges and rawtrace's other own ids
_INT_CODES = {1: "b", 2: "h", 4: "i", 8: "q"}


@dataclass(frozen=True)
class TpInt:
    offset: int
    width: int
    signed: bool
    raw = False
    capture = None

    @property
    def size(self) -> int:
        return self.width

    @property
    def ctx(self) -> CtxField:
        return CtxCopy(self.offset, self.width)

    def reader(self, at: int) -> Reader:
        code = _INT_CODES[self.width]
        layout = struct.Struct("<" + (code if self.signed else code.upper()))
        return lambda ret, tail: layout.unpack_from(tail, at)


@dataclass(frozen=True)
class TpChars:
    offset: int
    length: int
    raw = False
    capture = None

    @property
    def size(self) -> int:
        return self.length

    @property
    def ctx(self) -> CtxField:
        return CtxCopy(self.offset, self.length)

    def reader(self, at: int) -> Reader:
        return lambda ret, tail: (kernel_string(tail[at : at + self.length]),)


_FLAGS = struct.Struct("<I")


@dataclass(frozen=True)
class TpString:
    loc: int
    length: int = PATH_SIZE
    raw = False
    capture = None

    @property
    def size(self) -> int:
        return self.ctx.size

    @property
    def ctx(self) -> CtxString:
        return CtxString(self.loc, self.length)

    def reader(self, at: int) -> Reader:
        def read(ret: int, tail: bytes) -> tuple[ArgValue, ...]:
            (flags,) = _FLAGS.unpack_from(tail, at)
            if flags & UNAVAILABLE_PATH:
                return (None, False)
            text = kernel_string(tail[at + 8 : at + 8 + self.length])
            return (text, bool(flags & TRUNCATED_PATH))

        return read


def _field(field: TracepointField) -> tuple[Field, str] | None:
    """The kind of a format field and the arg type shown; None for one left out."""
    spelled = " ".join(field.type.split())
    if spelled.startswith("__data_loc char"):
        return Field(TpString(field.offset), (field.name, TRUNCATED_ARG_NAME)), "const char*"
    if spelled.startswith("char[") or spelled.startswith("const char["):
        return Field(TpChars(field.offset, field.size), (field.name,)), "const char*"
    if "[" in spelled or "__data_loc" in spelled or field.size not in _INT_CODES:
        return None  # other arrays: not an arg here
    signed = field.signed and "*" not in spelled
    return Field(TpInt(field.offset, field.size, signed), (field.name,)), spelled


def tracepoint_event(tracepoint: str, *, description: str = "") -> EventSpec:
    """An event on kernel tracepoint "category:name", its args the tracepoint's fields (but
    the common_ ones), read from its format file now: needs tracefs, so root."""
    category, _, name = tracepoint.partition(":")
    if not category or not name:
        raise RawtraceError(
            f"tracepoint {tracepoint!r} is not category:name", "e.g. signal:signal_generate"
        )
    try:
        form = read_tracepoint_format(ensure_tracefs(), category, name)
    except (KernelFactError, ValueError) as exc:
        raise RawtraceError(
            f"cannot read tracepoint {tracepoint}: {exc}",
            "name one that tracefs lists (available_events); reading it needs root",
        ) from exc
    fields: list[Field] = []
    args: list[ArgSpec] = []
    for field in form.fields.values():
        if field.name.startswith("common_"):
            continue
        made = _field(field)
        if made is not None:
            fields.append(made[0])
            args.append(ArgSpec(field.name, made[1]))
    if any(TRUNCATED_ARG_NAME in f.names for f in fields):
        args.append(ArgSpec(TRUNCATED_ARG_NAME, "bool"))
    return EventSpec(
        name=name,
        event_id=TRACEPOINT_IDS + form.id,
        args=tuple(args),
        feed=None,
        fields=tuple(fields),
        description=description or f"the kernel tracepoint {category}:{name}",
        tracepoint=TracepointFeed(category, name, tuple(fields)),
    )


def ctx_fields(spec: EventSpec) -> list[CtxField] | None:
    """What a declared tracepoint event's program copies; None for an event of rawtrace's own
    (whose loader is in tracepoint_fed)."""
    kinds = [field.kind for field in spec.fields]
    if not all(isinstance(k, (TpInt, TpChars, TpString)) for k in kinds):
        return None
    return [k.ctx for k in kinds if isinstance(k, (TpInt, TpChars, TpString))]
