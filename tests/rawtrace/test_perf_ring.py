"""Perf rings crafted in memory, drained by both drains: records across the wrap, LOST records,
and garbage."""

from __future__ import annotations

import struct

import pytest

from rawtrace.transports import perf_ring
from rawtrace.transports.batch import Batch
from rawtrace.transports.drain import Drains
from rawtrace.transports.perf_ring import HEADER, RECORD_LOST, RECORD_SAMPLE, copy_span

PAGE = 4096


def sample(payload: bytes) -> bytes:
    """A PERF_RECORD_SAMPLE with PERF_SAMPLE_RAW, padded to 8 bytes as the kernel does."""
    raw_size = len(payload) + (-(len(payload) + 4) % 8)
    body = struct.pack("<I", raw_size) + payload.ljust(raw_size, b"\0")
    return HEADER.pack(RECORD_SAMPLE, 0, HEADER.size + len(body)) + body


def lost(count: int) -> bytes:
    return HEADER.pack(RECORD_LOST, 0, 24) + struct.pack("<QQ", 99, count)


def perf_ring_with(
    records: bytes, size: int, tail: int, head: int | None = None
) -> tuple[memoryview, memoryview]:
    """A metadata page and a data area of `size` bytes holding records from tail (wrapping)."""
    data = bytearray(b"\xee" * size)
    for i, byte in enumerate(records):
        data[(tail + i) % size] = byte
    page = bytearray(PAGE)
    end = tail + len(records) if head is None else head
    struct.pack_into("<QQ", page, perf_ring.DATA_HEAD, end % 2**64, tail % 2**64)
    return memoryview(page), memoryview(data)


def drain_once(drains: Drains, page: memoryview, data: memoryview) -> Batch:
    ring = drains.perf(page, data)
    try:
        return ring.drain()
    finally:
        ring.close()


def drain_records(drains: Drains, records: bytes, size: int = 1024, tail: int = 0) -> Batch:
    page, data = perf_ring_with(records, size, tail)
    batch = drain_once(drains, page, data)
    assert perf_ring.read_tail(page) == perf_ring.read_head(page)  # all of it given back
    return batch


def test_samples_come_in_order_with_the_kernels_padding(drains: Drains) -> None:
    batch = drain_records(drains, sample(b"A" * 72) + sample(b"B" * 5))
    assert batch.payloads() == [b"A" * 72 + b"\0" * 4, b"B" * 5 + b"\0" * 7]  # 80 and 16 bytes
    assert batch.sizes == [76, 12]
    assert (batch.lost, batch.malformed) == (0, 0)


@pytest.mark.parametrize("tail_in_record", [0, 1, 4, 8, 12, 40, 87])
def test_record_straddling_the_wrap_comes_back_whole(drains: Drains, tail_in_record: int) -> None:
    size = 256
    records = sample(b"x" * 80) + sample(bytes(range(72)))
    # place the second record so the end of the data area cuts it at tail_in_record bytes
    tail = size - len(sample(b"x" * 80)) - tail_in_record + 1000 * size
    batch = drain_records(drains, records, size, tail)
    assert batch.payloads() == [b"x" * 80 + b"\0" * 4, bytes(range(72)) + b"\0" * 4]


def test_lost_records_are_counted(drains: Drains) -> None:
    batch = drain_records(drains, sample(b"a" * 8) + lost(7) + lost(5) + sample(b"b" * 8))
    assert batch.lost == 12
    assert len(batch.sizes) == 2


def test_garbage_header_stops_the_pass_and_is_counted(drains: Drains) -> None:
    good = sample(b"a" * 16)
    batch = drain_records(drains, good + HEADER.pack(RECORD_SAMPLE, 0, 4) + b"\0" * 20)
    assert len(batch.sizes) == 1
    assert batch.malformed == 28


def test_record_longer_than_the_span_is_malformed_not_read_past(drains: Drains) -> None:
    batch = drain_records(drains, HEADER.pack(RECORD_SAMPLE, 0, 4096) + b"\0" * 24)
    assert (batch.sizes, batch.malformed) == ([], 32)


def test_raw_size_beyond_its_record_is_malformed(drains: Drains) -> None:
    record = HEADER.pack(RECORD_SAMPLE, 0, 16) + struct.pack("<I", 1000) + b"\0" * 4
    batch = drain_records(drains, record + sample(b"ok" * 4))
    assert batch.malformed == 16
    assert batch.payloads() == [b"okokokok\0\0\0\0"]


def test_unknown_record_types_are_skipped(drains: Drains) -> None:
    other = HEADER.pack(3, 0, 16) + b"\0" * 8  # PERF_RECORD_COMM
    assert drain_records(drains, other + sample(b"z" * 4)).payloads() == [b"zzzz"]


def test_a_tail_too_short_for_a_header_is_malformed(drains: Drains) -> None:
    batch = drain_records(drains, sample(b"q" * 4) + b"\1\2\3")
    assert (batch.payloads(), batch.malformed) == ([b"qqqq"], 3)


@pytest.mark.parametrize("tail, head", [(100, 90), (0, 2048), (2**64 - 8, 2**63)])
def test_nonsense_positions_give_the_ring_back_unread(drains: Drains, tail: int, head: int) -> None:
    page, data = perf_ring_with(sample(b"s" * 8), 1024, tail, head)
    batch = drain_once(drains, page, data)
    assert batch == Batch(malformed=1024)
    assert perf_ring.read_tail(page) == head


def test_positions_wrap_at_2_to_the_64(drains: Drains) -> None:
    records = sample(b"w" * 16) + sample(b"v" * 16)
    assert drain_records(drains, records, 256, 2**64 - 24).payloads() == [
        b"w" * 16 + b"\0" * 4,
        b"v" * 16 + b"\0" * 4,
    ]


def test_an_empty_ring_leaves_the_tail_alone(drains: Drains) -> None:
    page, data = perf_ring_with(b"", 1024, 512)
    ring = drains.perf(page, data)
    try:
        assert ring.drain() == Batch()
        assert ring.drain() == Batch()
    finally:
        ring.close()
    assert perf_ring.read_tail(page) == 512


def test_a_drained_ring_gives_nothing_twice(drains: Drains) -> None:
    page, data = perf_ring_with(sample(b"once") + lost(2), 1024, 0)
    ring = drains.perf(page, data)
    try:
        first, second = ring.drain(), ring.drain()
    finally:
        ring.close()
    assert (first.payloads(), first.lost) == ([b"once"], 2)
    assert second == Batch()


def test_header_only_records_are_stepped_over(drains: Drains) -> None:
    # A record may be its header alone (8 bytes), the last one too. A SAMPLE or LOST that short
    # has no size or count to read: the walk steps over it, reading nothing of the next record.
    short = {kind: HEADER.pack(kind, 0, HEADER.size) for kind in (3, RECORD_SAMPLE, RECORD_LOST)}
    records = short[3] + short[RECORD_SAMPLE] + sample(b"k" * 4) + short[RECORD_LOST] + lost(1)
    batch = drain_records(drains, records + short[3])
    assert (batch.payloads(), batch.lost, batch.malformed) == ([b"kkkk"], 1, 0)


def test_malformed_records_add_up(drains: Drains) -> None:
    record = HEADER.pack(RECORD_SAMPLE, 0, 16) + struct.pack("<I", 1000) + b"\0" * 4
    batch = drain_records(drains, record + record + sample(b"ok" * 4))
    assert (batch.payloads(), batch.malformed) == ([b"okokokok\0\0\0\0"], 32)


def test_copy_span_of_nothing_of_the_whole_ring_and_across_its_end() -> None:
    data = memoryview(bytes(range(64)))
    assert copy_span(data, 5, 5) == b""
    assert copy_span(data, 64, 128) == bytes(range(64))
    assert copy_span(data, 16, 80) == bytes(range(16, 64)) + bytes(range(16))


def test_head_behind_tail_is_an_error_for_copy_span() -> None:
    with pytest.raises(ValueError, match="ring positions make no sense"):
        copy_span(memoryview(bytearray(64)), 100, 90)


def test_head_and_tail_in_the_metadata_page() -> None:
    page = memoryview(bytearray(4096))
    struct.pack_into("<Q", page, 1024, 4242)
    perf_ring.write_tail(page, 4000)
    assert (perf_ring.read_head(page), perf_ring.read_tail(page)) == (4242, 4000)
