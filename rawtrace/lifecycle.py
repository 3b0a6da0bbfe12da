"""A Tracer's life: made, started once, closed once, and read only by the process that
started it. Each misuse is refused with a RawtraceError that says what to do instead."""

from __future__ import annotations

import os

from rawtrace.errors import RawtraceError

NEW, RUNNING, CLOSED = "new", "running", "closed"


class Lifecycle:
    """The state of one tracer, and the pid of the process that started it."""

    def __init__(self) -> None:
        self.state = NEW
        self.owner: int | None = None

    @property
    def closed(self) -> bool:
        return self.state == CLOSED

    def start(self) -> None:
        if self.state == RUNNING:
            raise RawtraceError(
                "this tracer has started already", "start() once, or make a new one with trace()"
            )
        if self.state == CLOSED:
            raise RawtraceError(
                "this tracer is closed and cannot start again", "make a new one with trace()"
            )
        self.state, self.owner = RUNNING, os.getpid()

    def check_owner(self) -> None:
        """Refuse a process that inherited the tracer across fork(): its rings and programs are
        the parent's, whose events it would take."""
        if self.owner is not None and self.owner != os.getpid():
            raise RawtraceError(
                f"this tracer belongs to process {self.owner}, and this process is a fork() of it",
                "start a tracer of its own in the child",
            )

    def close(self) -> bool:
        """Mark the tracer closed; whether this process may release its kernel objects (a
        forked child must not detach the parent's probes)."""
        inherited = self.owner is not None and self.owner != os.getpid()
        self.state = CLOSED
        return not inherited
