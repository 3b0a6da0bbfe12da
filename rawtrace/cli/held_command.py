"""`rawtrace trace EVENTS -- COMMAND`: the command, started but held before its first
instruction, so that the tracer attaches (following its pid) before it runs."""

from __future__ import annotations

import os
import signal
import sys
from collections.abc import Sequence
from types import TracebackType


class HeldCommand:
    """A forked child waiting on a pipe; release() lets it exec COMMAND. Leaving the `with`
    block unreleased (the tracer failed) ends the child without running anything."""

    def __init__(self, argv: Sequence[str], stdout: int | None = None) -> None:
        """`stdout`: an fd for COMMAND's standard output instead of the tracer's."""
        self.argv = list(argv)
        self._status: int | None = None
        read_end, self._go = os.pipe()
        self.pid = os.fork()
        if self.pid == 0:  # the child: nothing here may return into the tracer's code
            os.close(self._go)
            go = os.read(read_end, 1)
            if go != b"x":
                os._exit(1)  # the tracer went away before releasing us
            if stdout is not None:
                os.dup2(stdout, 1)
            try:
                os.execvp(self.argv[0], self.argv)
            except OSError as exc:
                print(f"rawtrace: cannot run {self.argv[0]}: {exc.strerror}", file=sys.stderr)
            os._exit(127)  # as a shell says "command not found"
        os.close(read_end)

    def release(self) -> None:
        os.write(self._go, b"x")
        os.close(self._go)
        self._go = -1

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
        if self._status is None:
            if exc_type is not None:
                os.kill(self.pid, signal.SIGKILL)  # released, but the tracer broke down
            self.wait()
