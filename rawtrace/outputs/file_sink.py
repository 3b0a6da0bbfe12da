"""Where the CLI's event lines go: a file or standard output, written a batch at a time straight
to the fd, so that every line is counted as written or not written, never lost in a buffer.

A destination can fail part-way (a full filesystem, /dev/full, a reader that went away) or stall
(a reader that stopped reading). The first failure ends the writing: the lines of that batch
and every later one are counted as not written, with the cause. A regular file is cut back to
its last whole line, so that what was written stays valid NDJSON. A stalled pipe is waited on
in steps of _STEP seconds, so that a stop request ends the wait.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import select
import stat
import sys
import time
from typing import Callable

from rawtrace.errors import RawtraceError, UsageError, reason

_STEP = 0.1  # seconds: how long a stalled destination is waited on between checks of `stop`
_PIPE_BUF = select.PIPE_BUF  # a write this size never blocks once poll says the pipe has room


def open_destination(path: str, stop: Callable[[], bool]) -> int:
    """An fd for writing events to `path`, checked before anything is loaded; waits for a
    FIFO's reader until `stop()` turns true (then a RawtraceError)."""
    if not path:
        raise UsageError("-o '' names no file", "give a file name, or leave -o out for stdout")
    flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOCTTY | os.O_CLOEXEC | os.O_NONBLOCK
    waited = False
    while True:
        try:
            fd = os.open(path, flags, 0o644)
            break
        except OSError as exc:
            # a FIFO without a reader: O_NONBLOCK makes the open fail instead of hanging
            if exc.errno == errno.ENXIO and stop():
                raise RawtraceError(f"stopped while {path} had no reader: nothing traced") from exc
            if exc.errno != errno.ENXIO:
                raise RawtraceError(
                    f"cannot write events to {path}: {reason(exc)}",
                    "give -o a file in a directory that exists and is writable",
                ) from exc
            if not waited:
                print(f"rawtrace: waiting for a reader of {path}", file=sys.stderr, flush=True)
                waited = True
            time.sleep(_STEP)
    # this open file is ours alone: writes may block again (a stall is waited on with poll)
    fcntl.fcntl(fd, fcntl.F_SETFL, fcntl.fcntl(fd, fcntl.F_GETFL) & ~os.O_NONBLOCK)
    return fd


class EventSink:
    """Collects what a writer writes (one write() per line) and puts it on `fd` at flush().

    `written` and `unwritten` count lines; `failure` says why writing stopped (None while it
    goes on); `reader_gone` tells a closed pipe (`| head`), which is no failure."""

    def __init__(self, fd: int, name: str, stop: Callable[[], bool]) -> None:
        self.fd = fd
        self.name = name
        self._stop = stop
        self._lines: list[str] = []
        self.written = 0
        self.unwritten = 0
        self.failure: str | None = None
        self.reader_gone = False
        mode = os.fstat(fd).st_mode
        self._regular = stat.S_ISREG(mode)
        self._end = os.lseek(fd, 0, os.SEEK_CUR) if self._regular else 0

    def write(self, line: str) -> int:
        self._lines.append(line)
        return len(line)

    def flush(self, counted: bool = True) -> None:
        """Write what was collected; `counted=False` for a header, which is no event."""
        # surrogates from undecodable argv or kernel bytes stay visible, never an error
        lines = [line.encode("utf-8", "backslashreplace") for line in self._lines]
        self._lines = []
        if self.failure is not None or self.reader_gone:
            self.unwritten += len(lines)
            return
        done = 0
        try:
            done = self._write_all(memoryview(b"".join(lines)))
        except OSError as exc:
            self.reader_gone = exc.errno == errno.EPIPE
            self.failure = None if self.reader_gone else reason(exc)
        except _Stalled:
            self.failure = "stopped while the reader was not reading"
        whole = _whole_lines(lines, done)
        if counted:
            self.written += whole
            self.unwritten += len(lines) - whole
        if self._regular:
            self._end += sum(map(len, lines[:whole]))
            if whole < len(lines):
                with contextlib.suppress(OSError):  # /dev/full and friends: nothing to cut
                    os.ftruncate(self.fd, self._end)

    def _write_all(self, data: memoryview) -> int:
        done = 0
        while done < len(data):
            if self._regular:
                done += os.write(self.fd, data[done:])
                continue
            if not self._ready():
                continue
            done += os.write(self.fd, data[done : done + _PIPE_BUF])
        return done

    def _ready(self) -> bool:
        """Whether the fd takes a write now; raises _Stalled once a stop is asked and it
        still does not."""
        poll = select.poll()
        poll.register(self.fd, select.POLLOUT)
        if poll.poll(_STEP * 1000):
            return True
        if self._stop():
            raise _Stalled
        return False

    def close(self) -> None:
        os.close(self.fd)


class _Stalled(Exception):
    """A stop was asked while the destination took nothing."""


def _whole_lines(lines: list[bytes], done: int) -> int:
    """How many of `lines` lie wholly in the first `done` bytes."""
    count = 0
    for line in lines:
        if len(line) > done:
            break
        done -= len(line)
        count += 1
    return count
