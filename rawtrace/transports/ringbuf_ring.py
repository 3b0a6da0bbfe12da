"""BPF ring buffer arithmetic, apart from any I/O (kernel/bpf/ringbuf.c, 5.8+).

One ring shared by every CPU. The consumer page holds consumer_pos, which the reader writes; the
producer page holds producer_pos, which the kernel advances when a program reserves a record.
Each record starts with an 8-byte header, u32 len and u32 pg_off, and is padded to 8 bytes.
Two bits of len say what state the record is in: BUSY while it is reserved but not committed
(the records after it must wait), DISCARD when the program threw it away (skip it). The data
pages are mapped twice in a row, so a record that crosses the end reads on contiguously.
"""

from __future__ import annotations

import struct

from rawtrace.transports.batch import Batch
from rawtrace.transports.perf_ring import U64_MASK

BUSY = 1 << 31
DISCARD = 1 << 30
HEADER_SIZE = 8

_U32 = struct.Struct("<I")
_U64 = struct.Struct("<Q")


def read_position(page: memoryview) -> int:
    # x86-64 keeps loads in order, so the records read after this load of producer_pos are
    # those the kernel wrote before advancing it.
    return int(_U64.unpack_from(page, 0)[0])


def write_position(page: memoryview, position: int) -> None:
    # x86-64 never moves a store before earlier loads: the kernel cannot reuse the space of a
    # record still being read.
    _U64.pack_into(page, 0, position)


def parse_records(data: memoryview, start: int, end: int) -> tuple[Batch, int]:
    """The committed records from position start towards end in the doubly mapped `data`
    (2 * size bytes), and the position the reader has consumed up to.

    The walk stops at the first BUSY record. A header that makes no sense (unaligned, too short
    or too long for what is left) skips to end, the bytes counted as malformed.
    """
    size = len(data) // 2
    samples: list[bytes] = []
    position = start
    while position != end:
        left = end - position
        if left < HEADER_SIZE or position % 8:
            return Batch.of(samples, malformed=left), end
        offset = position % size
        (length,) = _U32.unpack_from(data, offset)
        if length & BUSY:
            break
        payload = length & ~(BUSY | DISCARD)
        total = (payload + HEADER_SIZE + 7) & ~7
        if total > left:
            return Batch.of(samples, malformed=left), end
        if not length & DISCARD:
            samples.append(bytes(data[offset + HEADER_SIZE : offset + HEADER_SIZE + payload]))
        position += total
    return Batch.of(samples), position


def drain(consumer: memoryview, producer: memoryview, data: memoryview) -> Batch:
    """Every committed record from consumer_pos on, then consumer_pos moved past them."""
    start, end = read_position(consumer), read_position(producer)
    if start == end:
        return Batch()
    span = (end - start) & U64_MASK
    if span > len(data) // 2:
        # nonsense positions: give the whole ring back rather than read garbage
        batch, position = Batch(malformed=len(data) // 2), end
    else:
        batch, position = parse_records(data, start, start + span)
    if position != start:
        write_position(consumer, position & U64_MASK)
    return batch
