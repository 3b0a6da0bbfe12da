"""Ring arithmetic over crafted rings: records across the wrap, LOST records, and garbage."""

from __future__ import annotations

import struct

import pytest

from rawtrace import perf_ring
from rawtrace.perf_ring import HEADER, RECORD_LOST, RECORD_SAMPLE, copy_span, parse_records


def sample(payload: bytes) -> bytes:
    """A PERF_RECORD_SAMPLE with PERF_SAMPLE_RAW, padded to 8 bytes as the kernel does."""
    raw_size = len(payload) + (-(len(payload) + 4) % 8)
    body = struct.pack("<I", raw_size) + payload.ljust(raw_size, b"\0")
    return HEADER.pack(RECORD_SAMPLE, 0, HEADER.size + len(body)) + body


def lost(count: int) -> bytes:
    return HEADER.pack(RECORD_LOST, 0, 24) + struct.pack("<QQ", 99, count)


def ring_with(records: bytes, size: int, tail: int) -> tuple[memoryview, int, int]:
    """A data area of `size` bytes holding records from position tail (wrapping)."""
    data = bytearray(b"\xee" * size)
    for i, byte in enumerate(records):
        data[(tail + i) % size] = byte
    return memoryview(data), tail, tail + len(records)


def test_samples_come_in_order_with_the_kernels_padding() -> None:
    batch = parse_records(sample(b"A" * 72) + sample(b"B" * 5))
    assert batch.samples[0] == b"A" * 72 + b"\0" * 4  # 72 + 4 pads to 80
    assert batch.samples[1] == b"B" * 5 + b"\0" * 7  # 5 + 4 pads to 16
    assert (batch.lost, batch.malformed) == (0, 0)


@pytest.mark.parametrize("tail_in_record", [0, 1, 4, 8, 12, 40, 87])
def test_record_straddling_the_wrap_comes_back_whole(tail_in_record: int) -> None:
    size = 256
    records = sample(b"x" * 80) + sample(bytes(range(72)))
    # place the second record so the end of the data area cuts it at tail_in_record bytes
    tail = size - len(sample(b"x" * 80)) - tail_in_record + 1000 * size
    data, tail, head = ring_with(records, size, tail)
    batch = parse_records(copy_span(data, tail, head))
    assert batch.samples == [b"x" * 80 + b"\0" * 4, bytes(range(72)) + b"\0" * 4]


def test_lost_records_are_counted() -> None:
    batch = parse_records(sample(b"a" * 8) + lost(7) + lost(5) + sample(b"b" * 8))
    assert batch.lost == 12
    assert len(batch.samples) == 2


def test_garbage_header_stops_the_pass_and_is_counted() -> None:
    good = sample(b"a" * 16)
    batch = parse_records(good + HEADER.pack(RECORD_SAMPLE, 0, 4) + b"\0" * 20)
    assert len(batch.samples) == 1
    assert batch.malformed == 28


def test_record_longer_than_the_span_is_malformed_not_read_past() -> None:
    batch = parse_records(HEADER.pack(RECORD_SAMPLE, 0, 4096) + b"\0" * 24)
    assert (batch.samples, batch.malformed) == ([], 32)


def test_raw_size_beyond_its_record_is_malformed() -> None:
    record = HEADER.pack(RECORD_SAMPLE, 0, 16) + struct.pack("<I", 1000) + b"\0" * 4
    batch = parse_records(record + sample(b"ok" * 4))
    assert batch.malformed == 16
    assert batch.samples == [b"okokokok\0\0\0\0"]


def test_unknown_record_types_are_skipped() -> None:
    other = HEADER.pack(3, 0, 16) + b"\0" * 8  # PERF_RECORD_COMM
    assert parse_records(other + sample(b"z" * 4)).samples == [b"zzzz"]


def test_head_behind_tail_is_an_error() -> None:
    with pytest.raises(ValueError, match="ring positions make no sense"):
        copy_span(memoryview(bytearray(64)), 100, 90)


def test_head_and_tail_in_the_metadata_page() -> None:
    page = memoryview(bytearray(4096))
    struct.pack_into("<Q", page, 1024, 4242)
    perf_ring.write_tail(page, 4000)
    assert (perf_ring.read_head(page), perf_ring.read_tail(page)) == (4242, 4000)
