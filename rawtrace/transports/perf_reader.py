"""The perf transport: one BPF_OUTPUT perf event and mmap-ed ring per online CPU, registered in a
BPF_MAP_TYPE_PERF_EVENT_ARRAY that programs write to with bpf_perf_event_output().

The reader owns the events, the maps of their rings and an epoll set. Wakeups come by watermark,
after a quarter of a ring has filled, not after every record: one wakeup per event costs the
traced workload several times its speed. A bounded wait drains whatever sits below the mark.
"""

from __future__ import annotations

import mmap
import select
from collections.abc import Sequence
from dataclasses import dataclass

from rawtrace.kernel.maps import Map
from rawtrace.kernel.perf_event import (
    PERF_COUNT_SW_BPF_OUTPUT,
    PERF_SAMPLE_RAW,
    AttrFlag,
    PerfEvent,
    PerfType,
    perf_event_attr,
)
from rawtrace.kernel.privileges import Refused, refusal
from rawtrace.transports.batch import Batch
from rawtrace.transports.drain import DRAINS, RingDrain
from rawtrace.transports.failed_outputs import FailedOutputs

DEFAULT_PAGES = 64  # data pages per CPU (256 KiB with 4 KiB pages); a power of two


@dataclass
class CpuRing:
    cpu: int
    event: PerfEvent
    buffer: mmap.mmap
    page: memoryview  # the metadata page
    data: memoryview  # the 2^n data pages
    drain: RingDrain
    reported_lost: int = 0  # what the kernel's LOST records said so far (late, see below)
    malformed: int = 0

    def close(self) -> None:
        self.drain.close()
        self.page.release()
        self.data.release()
        self.buffer.close()
        self.event.close()


class PerfReader:
    """Per-CPU perf rings behind one epoll fd. close() releases everything it opened."""

    # Below the watermark a quarter ring (about 700 records) can wait unseen; at this pace the
    # other three quarters take a storm of 20k+ records/s per CPU before they fill.
    max_wait = 0.1

    def __init__(
        self,
        events_map: Map,
        failed: FailedOutputs,
        cpus: Sequence[int],
        pages: int = DEFAULT_PAGES,
    ) -> None:
        if pages < 1 or pages & (pages - 1):
            raise ValueError(f"ring pages must be a power of two, not {pages}")
        self._failed = failed
        self.rings: dict[int, CpuRing] = {}
        self._epoll = select.epoll()
        try:
            for cpu in cpus:
                self._open_ring(events_map, cpu, pages)
        except BaseException:
            self.close()
            raise

    def _open_ring(self, events_map: Map, cpu: int, pages: int) -> None:
        data_size = pages * mmap.PAGESIZE
        attr = perf_event_attr(
            PerfType.SOFTWARE,
            PERF_COUNT_SW_BPF_OUTPUT,
            sample_period=1,
            sample_type=PERF_SAMPLE_RAW,
            flags=AttrFlag.WATERMARK,
            wakeup=data_size // 4,
        )
        try:
            event = PerfEvent.open(attr, pid=-1, cpu=cpu)
        except PermissionError as exc:
            raise refusal(f"a perf ring on CPU {cpu}", exc, Refused.PERF_EVENT) from exc
        try:
            buffer = mmap.mmap(event.fileno(), (1 + pages) * mmap.PAGESIZE, mmap.MAP_SHARED)
        except BaseException:
            event.close()
            raise
        view = memoryview(buffer)
        page, data = view[: mmap.PAGESIZE], view[mmap.PAGESIZE :]
        view.release()
        ring = CpuRing(cpu, event, buffer, page, data, DRAINS.perf(page, data))
        self.rings[cpu] = ring
        self._epoll.register(event.fileno(), select.EPOLLIN)
        events_map.update(cpu.to_bytes(4, "little"), event.fileno().to_bytes(4, "little"))
        event.enable()

    def fileno(self) -> int:
        """The epoll fd: readable when some ring passed its watermark."""
        return self._epoll.fileno()

    def drain(self) -> list[Batch]:
        """A batch per ring that holds records, oldest first; counts losses on the rings."""
        batches = []
        for ring in self.rings.values():
            batch = ring.drain.drain()
            ring.reported_lost += batch.lost
            ring.malformed += batch.malformed
            if batch.sizes:
                batches.append(batch)
        return batches

    def lost_per_cpu(self) -> dict[int, int]:
        # The programs' own count: the kernel writes a LOST record only with the next record
        # that fits in the same ring, so losses just before a trace ends would never show.
        return self._failed.per_cpu()

    def reported_lost_per_cpu(self) -> dict[int, int]:
        """What the kernel's LOST records reported, per CPU: never more than lost_per_cpu()."""
        return {cpu: ring.reported_lost for cpu, ring in self.rings.items()}

    def close(self) -> None:
        rings, self.rings = self.rings, {}
        for ring in rings.values():
            ring.close()
        self._epoll.close()
