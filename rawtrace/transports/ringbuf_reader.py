"""The ring buffer transport: one BPF_MAP_TYPE_RINGBUF (5.8+) that every CPU writes to with
bpf_ringbuf_output(), and a BPF_MAP_TYPE_PERCPU_ARRAY where the programs count what did not fit.

The programs pass BPF_RB_NO_WAKEUP: a wakeup per record costs the traced workload several times
its speed, and this ring has no watermark. So nothing ever wakes the reader; it polls on a
bounded clock instead (POLL_BOUND), short enough that the default ring does not fill between
two polls at tens of thousands of events a second.
"""

from __future__ import annotations

import mmap
import select

from rawtrace.kernel.maps import Map
from rawtrace.transports.batch import Batch
from rawtrace.transports.drain import DRAINS, RingDrain
from rawtrace.transports.failed_outputs import FailedOutputs

POLL_BOUND = 0.025  # seconds between two drains at most; 2,000 records of 80 bytes at 80k/s


def ring_size(pages: int, cpus: int) -> int:
    """The shared ring's bytes for `pages` per CPU: the memory the perf rings would take,
    rounded up to the power of two the kernel requires."""
    wanted = pages * cpus * mmap.PAGESIZE
    return 1 << (wanted - 1).bit_length()


class RingbufReader:
    """The consumer of one ring buffer map. close() releases the maps of its memory and the
    epoll fd; the BPF maps themselves belong to whoever created them."""

    max_wait = POLL_BOUND

    def __init__(self, ringbuf: Map, failed: FailedOutputs, size: int) -> None:
        self._failed = failed
        self._drain: RingDrain | None = None
        self.malformed = 0  # bytes of garbage skipped: stays 0 unless the ring is corrupted
        self._views: list[memoryview] = []
        self._maps: list[mmap.mmap] = []
        self._epoll = select.epoll()
        try:
            # consumer_pos is ours to write; producer_pos and the data are the kernel's, and
            # the kernel refuses a writable map of them
            self._consumer = self._map(ringbuf, mmap.PAGESIZE, 0, writable=True)
            producer = self._map(ringbuf, mmap.PAGESIZE + 2 * size, mmap.PAGESIZE, writable=False)
            self._producer = self._keep(producer[: mmap.PAGESIZE])
            self._data = self._keep(producer[mmap.PAGESIZE :])  # the data pages, twice
            self._drain = DRAINS.ringbuf(self._consumer, self._producer, self._data)
            self._epoll.register(ringbuf.fileno(), select.EPOLLIN)
        except BaseException:
            self._release()
            raise

    def _map(self, ringbuf: Map, length: int, offset: int, *, writable: bool) -> memoryview:
        prot = mmap.PROT_READ | (mmap.PROT_WRITE if writable else 0)
        buffer = mmap.mmap(ringbuf.fileno(), length, mmap.MAP_SHARED, prot, offset=offset)
        self._maps.append(buffer)
        return self._keep(memoryview(buffer))

    def _keep(self, view: memoryview) -> memoryview:
        self._views.append(view)
        return view

    def fileno(self) -> int:
        """The epoll fd. With BPF_RB_NO_WAKEUP it never turns readable: poll on a timer."""
        return self._epoll.fileno()

    def drain(self) -> list[Batch]:
        if self._drain is None:
            raise ValueError("the ring buffer reader is closed")
        batch = self._drain.drain()
        self.malformed += batch.malformed
        return [batch] if batch.sizes else []

    def lost_per_cpu(self) -> dict[int, int]:
        """What each CPU's program could not put in the ring, read from the per-CPU counter."""
        return self._failed.per_cpu()

    def close(self) -> None:
        self._release()

    def _release(self) -> None:
        drain, self._drain = self._drain, None
        if drain is not None:
            drain.close()
        views, self._views = self._views, []
        for view in reversed(views):  # slices before the views they were cut from
            view.release()
        buffers, self._maps = self._maps, []
        for buffer in buffers:
            buffer.close()
        self._epoll.close()
