"""The CLI's standard streams and -o files: where events go (checked before anything is
loaded), where the library's warnings go, and closed fds 0-2 made harmless."""

from __future__ import annotations

import fcntl
import logging
import os
import sys
from typing import Callable

from rawtrace.errors import RawtraceError
from rawtrace.outputs.file_sink import EventSink, open_destination


def open_event_sink(output: str | None, stop: Callable[[], bool]) -> EventSink:
    """Where events go: -o FILE (checked now, before anything is loaded), or stdout."""
    if output is not None:
        return EventSink(open_destination(output, stop), output, stop)
    if sys.stdout is None:  # started with >&-
        raise RawtraceError("standard output is closed", "give -o FILE for the events")
    sys.stdout.flush()
    try:
        fd = sys.stdout.fileno()
    except (AttributeError, ValueError, OSError):  # replaced in-process, as tests do
        fd = 1
    return EventSink(os.dup(fd), "standard output", stop)


def log_to_stderr() -> None:
    """The library's warnings (reconnects, drops) on stderr, as the CLI's own messages."""
    logger = logging.getLogger("rawtrace")
    if not logger.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(message)s"))
        logger.addHandler(handler)
        logger.setLevel(logging.WARNING)


def keep_standard_fds() -> None:
    """Put /dev/null on a closed fd 0, 1 or 2, so that no file rawtrace opens lands there and
    no status line can end up in the event stream; a closed stderr drops the status lines (as
    does one open only for reading, as a shell script's fd can be)."""
    for fd in (0, 1, 2):
        try:
            os.fstat(fd)
        except OSError:
            os.open(os.devnull, os.O_RDWR)  # the lowest free fd: this one
    if fcntl.fcntl(2, fcntl.F_GETFL) & os.O_ACCMODE == os.O_RDONLY:
        null = os.open(os.devnull, os.O_WRONLY)
        os.dup2(null, 2)
        os.close(null)
    if sys.stderr is None:
        sys.stderr = open(2, "w", closefd=False)  # noqa: SIM115 - lives as long as the process
