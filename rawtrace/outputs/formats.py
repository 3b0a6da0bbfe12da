"""Output formats: NDJSON in Tracee's event shape, and an aligned table for people.

Strings from the kernel are written so that no process can break a line, forge an event or drive
the terminal: JSON escapes every control character, and the table shows them as \\xNN escapes.
"""

from __future__ import annotations

import json
import time
from json.encoder import encode_basestring_ascii
from typing import Protocol

from rawtrace.events.event import ArgValue, Event


def json_line(event: Event) -> str:
    """One event as one line of JSON: json.dumps(event.to_dict(), separators=(",", ":")),
    character for character, at a fifth of its cost (a trace writes tens of thousands a second).

    A template of to_dict()'s constant parts; strings go through json's own escaper and ints
    through %d. Argument values other than int, str and None take the general path. (A bool in
    an int field would print as 1, not true: the decoder puts ints there.)
    """
    try:
        args = ",".join(
            [_ARG % (_string(a.name), _string(a.type), _value(a.value)) for a in event.args]
        )
    except _NotSimple:
        return json.dumps(event.to_dict(), separators=(",", ":"))
    return _EVENT % (
        event.timestamp,
        event.processor_id,
        event.process_id,
        event.cgroup_id,
        event.thread_id,
        event.parent_process_id,
        event.host_process_id,
        event.host_thread_id,
        event.host_parent_process_id,
        event.user_id,
        event.mount_namespace,
        event.pid_namespace,
        _string(event.process_name),
        _string(event.host_name),
        _string(event.container_id),
        _string(str(event.event_id)),
        _string(event.event_name),
        len(event.args),
        event.return_value,
        _string(event.syscall),
        args,
        event.call_start,
    )


# ASCII only: U+2028, NEL and friends stay escaped too, since some readers split lines on them
_string = encode_basestring_ascii
_EVENT = (
    '{"timestamp":%d,"threadStartTime":0,"processorId":%d,"processId":%d,"cgroupId":%d,'
    '"threadId":%d,"parentProcessId":%d,"hostProcessId":%d,"hostThreadId":%d,'
    '"hostParentProcessId":%d,"userId":%d,"mountNamespace":%d,"pidNamespace":%d,'
    '"processName":%s,"executable":{"path":""},"hostName":%s,"containerId":%s,'
    '"container":{},"kubernetes":{},"eventId":%s,"eventName":%s,"argsNum":%d,'
    '"returnValue":%d,"syscall":%s,"stackAddresses":null,'
    '"contextFlags":{"containerStarted":false,"isCompat":false},"threadEntityId":0,'
    '"processEntityId":0,"parentEntityId":0,"args":[%s],"callStartTime":%d}'
)
_ARG = '{"name":%s,"type":%s,"value":%s}'


class LineStream(Protocol):
    """Where a writer puts its lines, one write() each: a text file, or the CLI's EventSink."""

    def write(self, text: str, /) -> int: ...


class _NotSimple(Exception):
    """An argument value that the template does not spell like json.dumps."""


def _value(value: ArgValue) -> str:
    # exact types: a bool is an int, and json.dumps rejects bytes
    if type(value) is int:
        return str(value)
    if type(value) is str:
        return _string(value)
    if value is None:
        return "null"
    if type(value) is bool:
        return "true" if value else "false"
    if type(value) is tuple and all(type(item) is str for item in value):
        return "[" + ",".join([_string(item) for item in value]) + "]"
    raise _NotSimple


def printable(text: str) -> str:
    """text with every non-printable character (newline, ESC, a byte that was not UTF-8, kept
    as a lone surrogate) as a visible escape, and a backslash doubled, so that no text can
    spell what an escape shows."""
    if text.isprintable() and "\\" not in text:
        return text
    return "".join(
        c if c.isprintable() and c != "\\" else c.encode("unicode_escape").decode() for c in text
    )


class TableWriter:
    """Aligned columns: TIME PID COMM EVENT RET, then the args as name=value, each value
    spelled as in JSON (so strings from the kernel stay escaped)."""

    HEADER = f"{'TIME':<15} {'PID':>7} {'COMM':<16} {'EVENT':<11} {'RET':>6} ARGS"

    def __init__(self, stream: LineStream) -> None:
        self.stream = stream
        self.stream.write(self.HEADER + "\n")
        # localtime and strftime cost more than the rest of a row: once per second will do
        self._second = -1
        self._clock = ""

    def write(self, event: Event) -> None:
        seconds, nanos = divmod(event.timestamp, 1_000_000_000)
        if seconds != self._second:
            self._second = seconds
            self._clock = time.strftime("%H:%M:%S", time.localtime(seconds))
        args = " ".join([f"{a.name}={_cell(a.value)}" for a in event.args])
        self.stream.write(
            f"{self._clock}.{nanos // 1000:06d} {event.process_id:>7} "
            f"{printable(event.process_name):<16} {event.event_name:<11} "
            f"{event.return_value:>6} {args}\n"
        )


def _cell(value: ArgValue) -> str:
    try:
        return _value(value)
    except _NotSimple:
        return repr(value)  # escapes what is not printable, as printable() does


class JsonWriter:
    def __init__(self, stream: LineStream) -> None:
        self.stream = stream

    def write(self, event: Event) -> None:
        self.stream.write(json_line(event) + "\n")
