"""Output formats: NDJSON in Tracee's event shape, and an aligned table for people.

Strings from the kernel are written so that no process can break a line, forge an event or drive
the terminal: JSON escapes every control character, and the table shows them as \\xNN escapes.
"""

from __future__ import annotations

import json
import time
from typing import TextIO

from rawtrace.event import Event


def json_line(event: Event) -> str:
    """One event as one line of JSON."""
    # ASCII only: U+2028, NEL and friends stay escaped too, since some readers split lines on them
    return json.dumps(event.to_dict(), separators=(",", ":"))


def printable(text: str) -> str:
    """text with every non-printable character (newline, ESC, ...) as a visible escape."""
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else c.encode("unicode_escape").decode() for c in text)


class TableWriter:
    """Aligned columns: TIME PID COMM CHILD RET."""

    HEADER = f"{'TIME':<15} {'PID':>7} {'COMM':<16} {'CHILD':>7} {'RET':>6}"

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream
        self.stream.write(self.HEADER + "\n")

    def write(self, event: Event) -> None:
        seconds, nanos = divmod(event.timestamp, 1_000_000_000)
        clock = time.strftime("%H:%M:%S", time.localtime(seconds)) + f".{nanos // 1000:06d}"
        child = event.arg("pid") if event.args else ""
        self.stream.write(
            f"{clock:<15} {event.process_id:>7} {printable(event.process_name):<16} "
            f"{child!s:>7} {event.return_value:>6}\n"
        )


class JsonWriter:
    def __init__(self, stream: TextIO) -> None:
        self.stream = stream

    def write(self, event: Event) -> None:
        self.stream.write(json_line(event) + "\n")
