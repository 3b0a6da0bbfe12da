"""The compiled drains and the Python drains agree byte for byte on random rings: well-formed
records, garbage, and positions anywhere in 2**64."""

from __future__ import annotations

import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rawtrace.transports.batch import Batch
from rawtrace.transports.drain import COMPILED, PYTHON, Drains
from rawtrace.transports.perf_ring import DATA_HEAD, HEADER, RECORD_LOST, RECORD_SAMPLE
from rawtrace.transports.ringbuf_ring import BUSY, DISCARD

pytestmark = pytest.mark.skipif(COMPILED is None, reason="the compiled drain is not built")

positions = st.integers(0, 2**64 - 1)
sizes = st.sampled_from([64, 256, 1024])

perf_records = st.one_of(
    st.binary(max_size=40).map(
        lambda p: HEADER.pack(RECORD_SAMPLE, 0, 12 + len(p)) + struct.pack("<I", len(p)) + p
    ),
    st.integers(0, 2**64 - 1).map(
        lambda n: HEADER.pack(RECORD_LOST, 0, 24) + struct.pack("<QQ", 1, n)
    ),
    st.binary(max_size=24),  # garbage: headers with any type and size
)

ringbuf_records = st.one_of(
    st.tuples(st.binary(max_size=40), st.sampled_from([0, 0, BUSY, DISCARD])).map(
        lambda r: struct.pack("<II", len(r[0]) | r[1], 0) + r[0].ljust(-(-len(r[0]) // 8) * 8)
    ),
    st.binary(max_size=24),
)


def perf_outcome(drains: Drains, data: bytes, tail: int, head: int) -> tuple[Batch, bytes]:
    page = bytearray(4096)
    struct.pack_into("<QQ", page, DATA_HEAD, head, tail)
    ring = drains.perf(memoryview(page), memoryview(bytearray(data)))
    try:
        return ring.drain(), bytes(page)
    finally:
        ring.close()


def ringbuf_outcome(
    drains: Drains, data: bytes, consumer: int, producer: int
) -> tuple[Batch, bytes]:
    consumer_page, producer_page = bytearray(4096), bytearray(4096)
    struct.pack_into("<Q", consumer_page, 0, consumer)
    struct.pack_into("<Q", producer_page, 0, producer)
    ring = drains.ringbuf(
        memoryview(consumer_page), memoryview(producer_page), memoryview(bytearray(data * 2))
    )
    try:
        return ring.drain(), bytes(consumer_page)
    finally:
        ring.close()


def laid_out(blobs: list[bytes], size: int, start: int) -> tuple[bytes, int]:
    """The blobs from position start in a data area of size bytes, and where they end."""
    data = bytearray(b"\xee" * size)
    stream = b"".join(blobs)[:size]
    for i, byte in enumerate(stream):
        data[(start + i) % size] = byte
    return bytes(data), (start + len(stream)) % 2**64


@settings(max_examples=400, deadline=None)
@given(sizes, positions, st.lists(perf_records, max_size=30), st.integers(-16, 16))
def test_perf_drains_agree_on_records(
    size: int, tail: int, records: list[bytes], head_shift: int
) -> None:
    data, head = laid_out(records, size, tail)
    head = (head + head_shift) % 2**64  # now and then a head that cuts a record or overshoots
    assert COMPILED is not None
    assert perf_outcome(PYTHON, data, tail, head) == perf_outcome(COMPILED, data, tail, head)


@settings(max_examples=200, deadline=None)
@given(sizes, st.data(), positions, positions)
def test_perf_drains_agree_on_garbage(size: int, draw: st.DataObject, tail: int, head: int) -> None:
    data = draw.draw(st.binary(min_size=size, max_size=size))
    assert COMPILED is not None
    assert perf_outcome(PYTHON, data, tail, head) == perf_outcome(COMPILED, data, tail, head)


@settings(max_examples=400, deadline=None)
@given(sizes, positions, st.lists(ringbuf_records, max_size=30), st.integers(-16, 16))
def test_ringbuf_drains_agree_on_records(
    size: int, consumer: int, records: list[bytes], producer_shift: int
) -> None:
    consumer &= ~7 if consumer % 5 else ~0  # mostly aligned, as the kernel keeps them
    data, producer = laid_out(records, size, consumer)
    producer = (producer + producer_shift) % 2**64
    assert COMPILED is not None
    assert ringbuf_outcome(PYTHON, data, consumer, producer) == ringbuf_outcome(
        COMPILED, data, consumer, producer
    )


@settings(max_examples=200, deadline=None)
@given(sizes, st.data(), positions, positions)
def test_ringbuf_drains_agree_on_garbage(
    size: int, draw: st.DataObject, consumer: int, producer: int
) -> None:
    data = draw.draw(st.binary(min_size=size, max_size=size))
    assert COMPILED is not None
    assert ringbuf_outcome(PYTHON, data, consumer, producer) == ringbuf_outcome(
        COMPILED, data, consumer, producer
    )
