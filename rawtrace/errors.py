"""Errors a user can act on: each names the cause and, where there is one, the fix."""

from __future__ import annotations

import errno


class RawtraceError(Exception):
    """Base of rawtrace's errors. str() is one line: the cause, then the fix."""

    def __init__(self, cause: str, fix: str | None = None) -> None:
        super().__init__(cause)
        self.cause = cause
        self.fix = fix

    def __str__(self) -> str:
        return f"{self.cause}; {self.fix}" if self.fix else self.cause


class UsageError(RawtraceError):
    """An option or argument that rawtrace does not accept: the message names it and what is
    accepted. The command line exits 2 on it."""


class PermissionMissing(RawtraceError):
    """The process lacks a privilege the kernel asks for."""


class KernelFeatureMissing(RawtraceError):
    """The running kernel lacks something a trace needs (a config option, a tracepoint, ...)."""


class VerifierError(RawtraceError):
    """The kernel refused a program; `log` holds the verifier's explanation."""

    def __init__(
        self,
        program: str,
        errno: int,
        log: str,
        fix: str = "this is a rawtrace bug: please report it with the full verifier log",
    ) -> None:
        last = [line for line in log.splitlines() if line.strip()][-3:]
        detail = " | ".join(last) if last else "the verifier gave no log"
        super().__init__(
            f"the kernel rejected BPF program {program!r} (errno {errno}): {detail}",
            fix,
        )
        self.program = program
        self.errno = errno
        self.log = log


def reason(exc: BaseException) -> str:
    """Why an attempt failed, in one line: the error, and the errno's name where there is one."""
    text = str(exc)
    os_error = exc if isinstance(exc, OSError) else exc.__cause__
    if isinstance(os_error, OSError) and os_error.errno is not None:
        name = errno.errorcode.get(os_error.errno, str(os_error.errno))
        if isinstance(exc, OSError):
            text = os_error.strerror or text
        return f"{text} ({name})"
    return text
