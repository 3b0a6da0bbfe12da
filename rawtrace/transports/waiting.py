"""Waiting for a ring reader's fd, and waking that wait from another thread (close() or stop()
while a read blocks): poll() on the reader's fd and on a pipe of our own."""

from __future__ import annotations

import contextlib
import os
import select
import threading
import time


class Waiter:
    """Waits on `fd` until it is readable, a timeout passes, or wake() is called. Owns its
    pipe: close() releases it, after which wake() does nothing. Threads may wait at once: one
    polls, and the others wait for it (a poll object refuses two callers)."""

    def __init__(self, fd: int) -> None:
        self._wake_read, self._wake_write = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        self._poller = select.poll()
        self._poller.register(fd, select.POLLIN)
        self._poller.register(self._wake_read, select.POLLIN)
        self._polling = threading.Lock()

    def wait(self, seconds: float) -> None:
        began = time.monotonic()
        if not self._polling.acquire(timeout=seconds):
            return  # another thread polled all this time: what it saw is ready for us too
        try:
            left = max(seconds - (time.monotonic() - began), 0)
            for fd, _ in self._poller.poll(left * 1000):
                if fd == self._wake_read:
                    with contextlib.suppress(BlockingIOError):
                        os.read(fd, 64)
        finally:
            self._polling.release()

    def wake(self) -> None:
        if self._wake_write >= 0:
            with contextlib.suppress(BlockingIOError):  # a wakeup is already pending
                os.write(self._wake_write, b"\0")

    def close(self) -> None:
        for fd in (self._wake_read, self._wake_write):
            if fd >= 0:
                os.close(fd)
        self._wake_read, self._wake_write = -1, -1
