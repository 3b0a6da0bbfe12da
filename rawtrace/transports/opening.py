"""Transports: how records travel from the programs to user space. Each has a kernel half (the
Output the program builders emit) and a user half (a RingReader); open_transport makes both."""

from __future__ import annotations

import errno
import mmap
from contextlib import ExitStack
from dataclasses import dataclass
from typing import Protocol

from bpf_bytecode.programs.output import Output, PerfOutput, RingbufOutput
from kernel_compat import online_cpus, possible_cpus
from rawtrace.errors import KernelFeatureMissing, RawtraceError
from rawtrace.kernel.bpf import MapType
from rawtrace.kernel.maps import Map
from rawtrace.transports.batch import Batch
from rawtrace.transports.failed_outputs import FailedOutputs
from rawtrace.transports.perf_reader import PerfReader
from rawtrace.transports.ringbuf_reader import RingbufReader, ring_size

AUTO = "auto"
TRANSPORTS = (AUTO, "perf", "ringbuf")


class RingReader(Protocol):
    # Seconds records may wait for a drain: those below a perf ring's watermark, or in a ring
    # buffer written without wakeups, make no fd readable, so readers poll at least this often.
    max_wait: float

    def fileno(self) -> int:
        """An fd that turns readable when records are waiting (for select/epoll/asyncio)."""
        ...

    def drain(self) -> list[Batch]:
        """Every record now waiting: a batch of payloads per ring that holds any."""
        ...

    def lost_per_cpu(self) -> dict[int, int]:
        """Records the kernel could not deliver so far, per CPU."""
        ...

    def close(self) -> None: ...


@dataclass
class Transport:
    name: str
    output: Output  # what the programs emit into
    reader: RingReader
    fallbacks: tuple[str, ...] = ()  # in auto mode: why the transports tried first did not work


def pages_within(budget: int, cpus: int) -> int:
    """Ring pages per CPU so that all rings together take at most `budget` bytes: a power of
    two, at least 1."""
    pages = max(budget // (cpus * mmap.PAGESIZE), 1)
    return 1 << (pages.bit_length() - 1)


def open_transport(kind: str, resources: ExitStack, pages: int) -> Transport:
    """The transport `kind` names; auto takes the ring buffer where the kernel has one (5.8+),
    else the perf rings. `pages` is the ring memory per online CPU, in pages."""
    if kind == "perf":
        return open_perf_transport(resources, pages)
    if kind == "ringbuf":
        return open_ringbuf_transport(resources, pages)
    if kind != AUTO:
        raise RawtraceError(f"unknown transport {kind!r}", f"use one of {', '.join(TRANSPORTS)}")
    try:
        return open_ringbuf_transport(resources, pages)
    except KernelFeatureMissing as exc:
        transport = open_perf_transport(resources, pages)
        transport.fallbacks = (f"ringbuf: {exc.cause}",)
        return transport


def open_perf_transport(resources: ExitStack, pages: int) -> Transport:
    """A perf event array with a ring per online CPU; everything is owned by `resources`."""
    events_map = resources.enter_context(
        Map.create(
            MapType.PERF_EVENT_ARRAY,
            key_size=4,
            value_size=4,
            max_entries=max(possible_cpus()) + 1,
            name="rawtrace_events",
        )
    )
    failed = FailedOutputs.create(resources)
    reader = PerfReader(events_map, failed, online_cpus(), pages)
    resources.callback(reader.close)
    return Transport("perf", PerfOutput(events_map.fileno(), failed.fileno()), reader)


def open_ringbuf_transport(resources: ExitStack, pages: int) -> Transport:
    """A BPF ring buffer shared by all CPUs, and the per-CPU counter of records that did not
    fit; everything is owned by `resources`. Creating the ring is the feature probe."""
    size = ring_size(pages, len(online_cpus()))
    try:
        ringbuf = Map.create(
            MapType.RINGBUF, key_size=0, value_size=0, max_entries=size, name="rawtrace_ringbuf"
        )
    except RawtraceError as exc:
        cause = exc.__cause__
        if isinstance(cause, OSError) and cause.errno == errno.EINVAL:
            raise KernelFeatureMissing(
                "this kernel has no BPF ring buffer (BPF_MAP_TYPE_RINGBUF, 5.8+)",
                "use --transport perf",
            ) from cause
        raise
    resources.enter_context(ringbuf)
    failed = FailedOutputs.create(resources)
    reader = RingbufReader(ringbuf, failed, size)
    resources.callback(reader.close)
    return Transport("ringbuf", RingbufOutput(ringbuf.fileno(), failed.fileno()), reader)
