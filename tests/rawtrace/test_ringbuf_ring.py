"""BPF ring buffers crafted in memory, drained by both drains: padding, the wrap, BUSY and
DISCARD records, and garbage."""

from __future__ import annotations

import struct

import pytest

from rawtrace.transports import ringbuf_ring
from rawtrace.transports.batch import Batch
from rawtrace.transports.drain import Drains
from rawtrace.transports.ringbuf_ring import BUSY, DISCARD

SIZE = 256


def record(payload: bytes, flags: int = 0) -> bytes:
    """A record as the kernel lays it out: u32 len with its flags, u32 pg_off, the payload
    padded to 8 bytes."""
    padded = payload.ljust(-(-len(payload) // 8) * 8, b"\xaa")
    return struct.pack("<II", len(payload) | flags, 7) + padded


class Ringbuf:
    """A consumer page, a producer page and the data area mapped twice, as the kernel maps
    them; write() stores into both copies of the data."""

    def __init__(self, size: int = SIZE) -> None:
        self.size = size
        self.consumer = memoryview(bytearray(4096))
        self.producer = memoryview(bytearray(4096))
        self.data = memoryview(bytearray(b"\xee" * 2 * size))

    def write(self, position: int, blob: bytes) -> None:
        for i, byte in enumerate(blob):
            offset = (position + i) % self.size
            self.data[offset] = self.data[offset + self.size] = byte

    def positions(self, consumer: int, producer: int) -> None:
        struct.pack_into("<Q", self.consumer, 0, consumer % 2**64)
        struct.pack_into("<Q", self.producer, 0, producer % 2**64)

    def holding(self, blob: bytes, start: int = 0) -> Ringbuf:
        self.write(start, blob)
        self.positions(start, start + len(blob))
        return self

    @property
    def consumed(self) -> int:
        return ringbuf_ring.read_position(self.consumer)

    def drain(self, drains: Drains) -> Batch:
        ring = drains.ringbuf(self.consumer, self.producer, self.data)
        try:
            return ring.drain()
        finally:
            ring.close()


def test_payloads_come_back_without_header_or_padding(drains: Drains) -> None:
    ring = Ringbuf().holding(record(b"A" * 72) + record(b"B" * 5) + record(b""))
    batch = ring.drain(drains)
    assert batch.payloads() == [b"A" * 72, b"B" * 5, b""]
    assert (batch.lost, batch.malformed) == (0, 0)
    assert ring.consumed == 80 + 16 + 8


@pytest.mark.parametrize("cut", [0, 8, 16, 40, 72, 80])
def test_record_across_the_end_reads_on_in_the_second_mapping(drains: Drains, cut: int) -> None:
    first = record(bytes(range(72)))
    start = SIZE - cut + 9 * SIZE
    ring = Ringbuf().holding(first + record(b"z" * 8), start)
    assert ring.drain(drains).payloads() == [bytes(range(72)), b"z" * 8]
    assert ring.consumed == start + 80 + 16


def test_busy_record_holds_back_itself_and_what_follows(drains: Drains) -> None:
    busy = record(b"b" * 16, BUSY)
    ring = Ringbuf().holding(record(b"a" * 8) + busy + record(b"c" * 8))
    assert ring.drain(drains).payloads() == [b"a" * 8]
    assert ring.consumed == 16
    ring.write(16, record(b"b" * 16))  # the program commits it
    assert ring.drain(drains).payloads() == [b"b" * 16, b"c" * 8]
    assert ring.consumed == 16 + 24 + 16


def test_discarded_records_are_skipped_and_consumed(drains: Drains) -> None:
    ring = Ringbuf().holding(record(b"x" * 8, DISCARD) + record(b"y" * 8))
    assert ring.drain(drains).payloads() == [b"y" * 8]
    assert ring.consumed == 32


def test_a_length_beyond_the_producer_is_malformed_not_read_past(drains: Drains) -> None:
    ring = Ringbuf().holding(record(b"ok") + struct.pack("<II", 200, 0) + b"\0" * 8)
    batch = ring.drain(drains)
    assert (batch.payloads(), batch.malformed) == ([b"ok"], 16)
    assert ring.consumed == 32


def test_unaligned_positions_are_malformed(drains: Drains) -> None:
    ring = Ringbuf().holding(b"\0" * 4 + record(b"late"), 4)
    assert ring.drain(drains) == Batch(malformed=20)
    assert ring.consumed == 24


@pytest.mark.parametrize("consumer, producer", [(64, 8), (0, SIZE + 8), (2**64 - 8, 2**62)])
def test_nonsense_positions_give_the_ring_back_unread(
    drains: Drains, consumer: int, producer: int
) -> None:
    ring = Ringbuf().holding(record(b"x"))
    ring.positions(consumer, producer)
    assert ring.drain(drains) == Batch(malformed=SIZE)
    assert ring.consumed == producer


def test_positions_wrap_at_2_to_the_64(drains: Drains) -> None:
    ring = Ringbuf().holding(record(b"p" * 8) + record(b"q" * 8), 2**64 - 16)
    assert ring.drain(drains).payloads() == [b"p" * 8, b"q" * 8]
    assert ring.consumed == 16


def test_an_empty_ring_is_not_written(drains: Drains) -> None:
    ring = Ringbuf().holding(b"", 40)
    ring.consumer[8] = 1  # a canary next to consumer_pos
    assert ring.drain(drains) == Batch()
    assert (ring.consumed, ring.consumer[8]) == (40, 1)


def test_a_full_ring_is_read_whole(drains: Drains) -> None:
    # the producer a whole ring ahead, the most the kernel lets it be: every record is read
    payloads = [bytes([65 + i]) * 24 for i in range(SIZE // 32)]  # 32 bytes each with header
    ring = Ringbuf().holding(b"".join(record(p) for p in payloads), start=SIZE - 40)
    batch = ring.drain(drains)
    assert (batch.payloads(), batch.malformed) == (payloads, 0)
    assert ring.consumed == 2 * SIZE - 40
