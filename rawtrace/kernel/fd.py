"""Ownership of kernel file descriptors: exactly one owner closes each, on every path."""

from __future__ import annotations

import os
from types import TracebackType
from typing import TypeVar

_Self = TypeVar("_Self", bound="OwnedFd")


class OwnedFd:
    """A file descriptor with one owner. close() is idempotent; `with` closes it on any exit."""

    def __init__(self, fd: int) -> None:
        self._fd = fd

    def fileno(self) -> int:
        if self._fd < 0:
            raise ValueError(f"{type(self).__name__} is closed")
        return self._fd

    @property
    def closed(self) -> bool:
        return self._fd < 0

    def close(self) -> None:
        fd, self._fd = self._fd, -1
        if fd >= 0:
            os.close(fd)

    def __enter__(self: _Self) -> _Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} fd={self._fd}>"
