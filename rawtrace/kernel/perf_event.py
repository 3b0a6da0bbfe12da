"""perf_event_open(): the attribute layout (struct perf_event_attr in
include/uapi/linux/perf_event.h) and an owner for each event fd.

Glossary: a perf *event* is an fd from perf_event_open(); attaching a BPF program to a tracepoint
or kprobe means opening an event for that probe and handing it the program. An event of type
SOFTWARE/BPF_OUTPUT carries no probe at all: it only owns a ring that bpf_perf_event_output()
writes to.
"""

from __future__ import annotations

import fcntl
import struct
from enum import IntEnum

from rawtrace.kernel.fd import OwnedFd
from rawtrace.kernel.ffi import perf_event_open

# PERF_ATTR_SIZE_VER5 (4.1+) holds every field rawtrace sets; newer kernels accept it as is.
ATTR_SIZE = 112

PERF_FLAG_FD_CLOEXEC = 1 << 3
PERF_SAMPLE_RAW = 1 << 10
PERF_COUNT_SW_BPF_OUTPUT = 10

IOC_ENABLE = 0x2400
IOC_DISABLE = 0x2401
IOC_SET_BPF = 0x40042408  # _IOW('$', 8, __u32)


class PerfType(IntEnum):
    HARDWARE = 0
    SOFTWARE = 1
    TRACEPOINT = 2


class AttrFlag(IntEnum):
    """Bits of the flags word at offset 40."""

    DISABLED = 1 << 0
    WATERMARK = 1 << 14  # wake the reader after wakeup_watermark bytes, not wakeup_events records


def perf_event_attr(
    perf_type: int,
    config: int,
    *,
    sample_period: int = 0,
    sample_type: int = 0,
    flags: int = 0,
    wakeup: int = 0,
    config1: int = 0,
    config2: int = 0,
) -> bytearray:
    """A packed perf_event_attr. `wakeup` is wakeup_events, or bytes with AttrFlag.WATERMARK."""
    attr = bytearray(ATTR_SIZE)
    struct.pack_into("<IIQQQ", attr, 0, perf_type, ATTR_SIZE, config, sample_period, sample_type)
    struct.pack_into("<QI", attr, 40, flags, wakeup)
    struct.pack_into("<QQ", attr, 56, config1, config2)
    return attr


class PerfEvent(OwnedFd):
    """One open perf event."""

    @classmethod
    def open(cls, attr: bytearray, *, pid: int, cpu: int, group_fd: int = -1) -> PerfEvent:
        return cls(perf_event_open(attr, pid, cpu, group_fd, PERF_FLAG_FD_CLOEXEC))

    def enable(self) -> None:
        fcntl.ioctl(self.fileno(), IOC_ENABLE, 0)

    def disable(self) -> None:
        fcntl.ioctl(self.fileno(), IOC_DISABLE, 0)

    def set_bpf(self, prog_fd: int) -> None:
        fcntl.ioctl(self.fileno(), IOC_SET_BPF, prog_fd)
