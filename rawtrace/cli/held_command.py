"""`rawtrace trace EVENTS -- COMMAND`: the command, started but held before its first
instruction, so that the tracer attaches (following its pid) before it runs.

COMMAND is looked up on PATH before the fork, so that the first exec the trace sees is
COMMAND's own (no failed tries of comm rawtrace). Once released, COMMAND is never harmed by
rawtrace's own failure: it runs to its end and rawtrace waits for it."""

from __future__ import annotations

import os
import shutil
import signal
import sys
from collections.abc import Sequence
from types import TracebackType

from rawtrace.errors import RawtraceError

# Python ignores these; an ignored signal stays ignored across exec, so COMMAND gets them back
_RESTORED = (signal.SIGPIPE, signal.SIGXFSZ)


def resolve(argv: Sequence[str]) -> str:
    """The program COMMAND runs, as execvp would find it on PATH."""
    found = argv[0] if "/" in argv[0] else shutil.which(argv[0])
    if not found:
        raise RawtraceError(f"cannot run {argv[0]}: not found on PATH", "check its name")
    return found


class HeldCommand:
    """A forked child waiting on a pipe; release() lets it exec COMMAND. Leaving the `with`
    block unreleased (the tracer failed) ends the child without running anything."""

    def __init__(self, argv: Sequence[str], stdout: int | None = None) -> None:
        """`stdout`: an fd for COMMAND's standard output instead of the tracer's."""
        self.argv = list(argv)
        program = resolve(self.argv)
        self._status: int | None = None
        read_end, self._go = os.pipe()
        self.pid = os.fork()
        if self.pid == 0:  # the child: nothing here may return into the tracer's code
            # a signal forwarded before release ends COMMAND as it would a running one
            for signum in (*_RESTORED, signal.SIGINT, signal.SIGTERM):
                signal.signal(signum, signal.SIG_DFL)
            os.close(self._go)
            go = os.read(read_end, 1)
            if go != b"x":
                os._exit(1)  # the tracer went away before releasing us
            if stdout is not None:
                os.dup2(stdout, 1)
            try:
                os.execv(program, self.argv)
            except OSError as exc:
                print(f"rawtrace: cannot run {self.argv[0]}: {exc.strerror}", file=sys.stderr)
            os._exit(126)  # as a shell says "found but cannot run"
        os.close(read_end)

    def release(self) -> None:
        os.write(self._go, b"x")
        os.close(self._go)
        self._go = -1

    @property
    def released(self) -> bool:
        return self._go < 0

    def finished(self) -> bool:
        if self._status is None:
            pid, status = os.waitpid(self.pid, os.WNOHANG)
            if pid:
                self._status = status
        return self._status is not None

    def wait(self) -> int:
        """COMMAND's exit status; 128 + N if signal N ended it, as shells report it."""
        if self._status is None:
            self._status = os.waitpid(self.pid, 0)[1]
        if os.WIFSIGNALED(self._status):
            return 128 + os.WTERMSIG(self._status)
        return os.WEXITSTATUS(self._status)

    def __enter__(self) -> HeldCommand:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._go >= 0:  # never released: the child exits on the closed pipe
            os.close(self._go)
            self._go = -1
            self.wait()
