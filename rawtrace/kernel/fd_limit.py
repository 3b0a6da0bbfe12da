"""File descriptors: a trace holds one per map, program, link and ring (about 40 for a few
events, more with many CPUs), and a low RLIMIT_NOFILE would fail it part-way with errors that
blame the kernel. rawtrace raises its soft limit to the hard one, as a program needing many
fds should; a trace that still runs out ends with one line naming the limit and the fix."""

from __future__ import annotations

import errno
import resource

from rawtrace.errors import RawtraceError

_OUT = (errno.EMFILE, errno.ENFILE)


def lift_fd_limit() -> None:
    """Raise the soft RLIMIT_NOFILE to the hard limit (no privilege needed)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def out_of_fds(exc: BaseException) -> RawtraceError | None:
    """The error to raise instead of `exc` when it (or an error behind it) ran out of file
    descriptors; None otherwise."""
    seen: BaseException | None = exc
    while seen is not None:
        if (isinstance(seen, OSError) and seen.errno in _OUT) or "Too many open files" in str(seen):
            return _error(seen)
        seen = seen.__cause__ or seen.__context__
    return None


def _error(exc: BaseException) -> RawtraceError:
    if isinstance(exc, OSError) and exc.errno == errno.ENFILE:
        return RawtraceError(
            "the system's table of open files is full (ENFILE)",
            "close some files or raise the sysctl fs.file-max",
        )
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    return RawtraceError(
        f"out of file descriptors: RLIMIT_NOFILE allows {soft} (hard limit {hard})",
        "raise it, e.g. `ulimit -n 4096` (as root, the hard limit too), then trace again",
    )
