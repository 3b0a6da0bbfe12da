"""Perf ring arithmetic, apart from any I/O: where the records are, and what they say.

A ring is one metadata page (struct perf_event_mmap_page) followed by 2^n data pages. The kernel
advances data_head after writing whole records; the reader consumes up to it and stores
data_tail to give the space back. Positions grow without bound and wrap modulo the data size,
so a record can straddle the end of the data area.
"""

from __future__ import annotations

import struct

from rawtrace.transports.batch import Batch

DATA_HEAD = 1024  # offsetof(struct perf_event_mmap_page, data_head)
DATA_TAIL = 1032

HEADER = struct.Struct("<IHH")  # struct perf_event_header: type, misc, size
RAW_SIZE = struct.Struct("<I")  # PERF_SAMPLE_RAW: u32 size, then the bytes
LOST = struct.Struct("<QQ")  # PERF_RECORD_LOST after the header: id, lost

RECORD_LOST = 2
RECORD_SAMPLE = 9

_U64 = struct.Struct("<Q")
U64_MASK = (1 << 64) - 1


def read_head(page: memoryview) -> int:
    # x86-64 keeps loads in order, so the data read after this load sees what the kernel wrote
    # before publishing data_head (its smp_store_release pairs with this plain load).
    return int(_U64.unpack_from(page, DATA_HEAD)[0])


def read_tail(page: memoryview) -> int:
    return int(_U64.unpack_from(page, DATA_TAIL)[0])


def write_tail(page: memoryview, tail: int) -> None:
    # The store comes after every read of the records it frees (x86-64 never moves a store
    # before earlier loads), so the kernel cannot overwrite a record still being read.
    _U64.pack_into(page, DATA_TAIL, tail)


def copy_span(data: memoryview, tail: int, head: int) -> bytes:
    """The bytes from tail to head as one contiguous copy, joining the two parts of a wrap."""
    size = len(data)
    length = head - tail
    if not 0 <= length <= size:
        raise ValueError(f"ring positions make no sense: tail {tail}, head {head}, size {size}")
    start = tail % size
    end = start + length
    if end <= size:
        return bytes(data[start:end])
    return bytes(data[start:]) + bytes(data[: end - size])


def parse_records(span: bytes) -> Batch:
    """Split a span of whole records into sample payloads and lost counts."""
    samples: list[bytes] = []
    lost = malformed = 0
    offset, end = 0, len(span)
    while offset + HEADER.size <= end:
        record_type, _misc, size = HEADER.unpack_from(span, offset)
        if size < HEADER.size or offset + size > end:
            return Batch.of(samples, lost, malformed + end - offset)
        body = offset + HEADER.size
        if record_type == RECORD_SAMPLE and size >= HEADER.size + RAW_SIZE.size:
            (raw_size,) = RAW_SIZE.unpack_from(span, body)
            start = body + RAW_SIZE.size
            if start + raw_size > offset + size:
                malformed += size
            else:
                samples.append(span[start : start + raw_size])
        elif record_type == RECORD_LOST and size >= HEADER.size + LOST.size:
            # a u64 sum, wrapping like the compiled drain's (only garbage could overflow it)
            lost = (lost + LOST.unpack_from(span, body)[1]) & U64_MASK
        offset += size
    return Batch.of(samples, lost, malformed + end - offset)


def drain(page: memoryview, data: memoryview) -> Batch:
    """Every record between data_tail and data_head, then data_tail moved up to data_head.

    Positions that make no sense (head behind tail, or more than a ring apart) give the whole
    ring back, counted as malformed, rather than reading garbage.
    """
    head, tail = read_head(page), read_tail(page)
    if head == tail:
        return Batch()
    span = (head - tail) & U64_MASK  # the kernel's positions wrap at 2**64
    if span > len(data):
        batch = Batch(malformed=len(data))
    else:
        batch = parse_records(copy_span(data, tail, tail + span))
    write_tail(page, head)
    return batch
