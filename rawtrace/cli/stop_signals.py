"""SIGINT and SIGTERM, as the CLI answers them.

Without COMMAND, the first one ends the trace: the handler sets a flag that every wait of the
CLI checks at least every 0.1 s (the rings' read, a stalled destination, a FIFO without a
reader), since Python retries a system call that a signal interrupts.

With COMMAND, rawtrace follows COMMAND to its end: a SIGTERM sent to rawtrace is sent on to
COMMAND, as `timeout` and `sudo` do (SIGINT from a terminal reaches COMMAND by itself, being
in the same process group). A second signal is not swallowed: it ends the trace at once and
rawtrace exits without waiting for COMMAND, which runs on.
"""

from __future__ import annotations

import contextlib
import os
import signal
from types import FrameType

STOPPING = (signal.SIGINT, signal.SIGTERM)


class StopSignals:
    """Counts SIGINT and SIGTERM; `forward_to` is COMMAND's pid once it runs."""

    def __init__(self) -> None:
        self.count = 0
        self.forward_to: int | None = None
        for signum in STOPPING:
            signal.signal(signum, self._handle)

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        self.count += 1
        if self.forward_to is not None and signum == signal.SIGTERM:
            with contextlib.suppress(ProcessLookupError):  # it ended meanwhile
                os.kill(self.forward_to, signum)

    def asked(self) -> bool:
        """Whether any stop signal came: a wait on the destination gives up then."""
        return self.count > 0

    def received(self) -> bool:
        """Whether the trace should end: any signal, or with COMMAND a second one."""
        return self.count >= (1 if self.forward_to is None else 2)
