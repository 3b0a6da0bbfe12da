"""The core every perf-event-based attach family shares: hand a program to an open perf event.

Two ways exist. A BPF link (BPF_LINK_CREATE with BPF_PERF_EVENT, kernel 5.15, commit b89fbfbb854c)
owns the attachment as an fd of its own; older kernels take the program with the
PERF_EVENT_IOC_SET_BPF ioctl (4.1+) and detach when the event's fd closes.
"""

from __future__ import annotations

import errno
import os

from rawtrace.kernel import bpf
from rawtrace.kernel.bpf import AttachType
from rawtrace.kernel.loading import Program
from rawtrace.kernel.perf_event import PerfEvent
from rawtrace.kernel.privileges import Refused, refusal

_ENOTSUPP = 524  # kernel-internal errno that some bpf() paths leak to user space
# Kernels without perf-event links answer BPF_LINK_CREATE with one of these.
_NO_PERF_LINK = (errno.EINVAL, errno.EOPNOTSUPP, _ENOTSUPP)


class PerfEventLink:
    """A program attached to a perf event; owns the event and, where used, the BPF link."""

    def __init__(self, event: PerfEvent, link_fd: int | None, description: str) -> None:
        self.event = event
        self.link_fd = link_fd
        self.description = description

    def close(self) -> None:
        link_fd, self.link_fd = self.link_fd, None
        try:
            if link_fd is not None:
                os.close(link_fd)
        finally:
            self.event.close()

    def __repr__(self) -> str:
        via = "bpf link" if self.link_fd is not None else "ioctl"
        return f"<PerfEventLink {self.description} via {via}>"


def open_probe_event(attr: bytearray, refused: str) -> PerfEvent:
    """The perf event of a probe (tracepoint or kprobe): one for every CPU, pid=-1 and cpu=0.
    A refusal names what was `refused` ("a kprobe on X") and the fix."""
    try:
        return PerfEvent.open(attr, pid=-1, cpu=0)
    except PermissionError as exc:
        raise refusal(refused, exc, Refused.PERF_EVENT) from exc


def attach_perf_event(event: PerfEvent, program: Program, description: str) -> PerfEventLink:
    """Attach program to event and enable it. The event is owned by the result, or closed."""
    try:
        link_fd: int | None = bpf.link_create(
            program.fileno(), event.fileno(), AttachType.PERF_EVENT
        )
    except OSError as exc:
        if exc.errno not in _NO_PERF_LINK:
            event.close()
            raise
        link_fd = None
    link = PerfEventLink(event, link_fd, description)
    try:
        if link_fd is None:
            event.set_bpf(program.fileno())
        event.enable()
    except BaseException:
        link.close()
        raise
    return link
