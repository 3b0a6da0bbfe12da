"""(1) Drain and decode over a synthetic ring of 250k records: compiled against pure Python, for
both transports, in records/s; and the JSON encoder against json.dumps.

The records are vfork records as the programs send them (the fixed record of record.py, then
the catalogue's tail for vfork: the hold BLOCK), and each benchmark checks that it measured
what it names: every record made is drained and decoded, none undecodable, and json_line
writes what json.dumps writes. RAWTRACE_BENCH_RECORDS (250,000: 90 MiB of records) sizes the
ring; CI's smoke run makes it small.
"""

from __future__ import annotations

import json
import os
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Callable

import pytest
from bench_report import Table, publish

from bpf_bytecode.programs.record import SYSCALL_RECORD
from bpf_bytecode.programs.vfork import BLOCK, RELEASE, RELEASED, Cause
from rawtrace.events.catalogue import CATALOGUE
from rawtrace.events.decoding import Decoder
from rawtrace.outputs.formats import json_line
from rawtrace.transports.batch import Batch
from rawtrace.transports.drain import COMPILED, PYTHON, Drains, RingDrain
from rawtrace.transports.perf_ring import DATA_HEAD, HEADER, RECORD_SAMPLE

RECORDS = int(os.environ.get("RAWTRACE_BENCH_RECORDS", "250000"))
VFORK = CATALOGUE["vfork"]
FIELDS = len(SYSCALL_RECORD.unpack(bytes(SYSCALL_RECORD.size)))
# the ringbuf's 8-byte header and padding is the most either transport adds to a record
RING = 1 << max(12, (RECORDS * (SYSCALL_RECORD.size + VFORK.tail_size + 16)).bit_length())
# what released the held parent, in turn: an exit, a signal, an exec of a path that JSON escapes
RELEASES = [(Cause.EXIT, 0, b""), (Cause.SIGNAL, 9, b""), (Cause.EXECVE, 0, b'/bin/"s\\h\n')]


def payload(i: int) -> bytes:
    """The record of the i-th vfork: its fixed record, then its tail, the hold BLOCK."""
    context = (10**12 + i, 10**12, (4242 << 32) | 4242, 0, 1, b"storm", VFORK.event_id, i % 2)
    record = SYSCALL_RECORD.pack(*context, *[0] * (FIELDS - 9), 100_000 + i % 30_000)
    cause, code, path = RELEASES[i % len(RELEASES)]
    block = BLOCK.pack(1000 + i, RELEASE.pack(cause | RELEASED, code, path))
    return record + block.ljust(VFORK.tail_size, b"\0")


def perf_record(i: int) -> bytes:
    raw = payload(i)
    raw += bytes(-(len(raw) + 4) % 8)  # the kernel pads PERF_SAMPLE_RAW to 8 bytes
    return (
        HEADER.pack(RECORD_SAMPLE, 0, HEADER.size + 4 + len(raw))
        + struct.pack("<I", len(raw))
        + raw
    )


def ringbuf_record(i: int) -> bytes:
    raw = payload(i)
    return struct.pack("<II", len(raw), 0) + raw + bytes(-len(raw) % 8)


@dataclass
class Ring:
    """A ring full of RECORDS records; reset() puts the consumer back at the start."""

    positions: memoryview  # data_tail/data_head's page, or the consumer page
    producer: memoryview
    data: memoryview
    end: int
    kind: str

    def reset(self) -> None:
        if self.kind == "perf":
            struct.pack_into("<QQ", self.positions, DATA_HEAD, self.end, 0)
        else:
            struct.pack_into("<Q", self.positions, 0, 0)
            struct.pack_into("<Q", self.producer, 0, self.end)

    def open(self, drains: Drains) -> RingDrain:
        if self.kind == "perf":
            return drains.perf(self.positions, self.data)
        return drains.ringbuf(self.positions, self.producer, self.data)


def _ring(kind: str) -> Ring:
    # 1,000 distinct records repeated: building each one by one would dominate the run
    make = perf_record if kind == "perf" else ringbuf_record
    block = b"".join(make(i) for i in range(1000))
    stream = block * (RECORDS // 1000) + b"".join(make(i) for i in range(RECORDS % 1000))
    size = 2 * RING if kind == "ringbuf" else RING
    data = bytearray(size)
    data[: len(stream)] = stream
    if kind == "ringbuf":
        data[RING : RING + len(stream)] = stream  # the kernel maps the data twice
    ring = Ring(memoryview(bytearray(4096)), memoryview(bytearray(4096)), memoryview(data),
                len(stream), kind)  # fmt: skip
    return ring


_RINGS: dict[str, Ring] = {}
_RATES: dict[tuple[str, str, str], float] = {}


def ring_of(kind: str) -> Ring:
    if kind not in _RINGS:
        _RINGS[kind] = _ring(kind)
    return _RINGS[kind]


def drains_named(name: str) -> Drains:
    if name == "python":
        return PYTHON
    if COMPILED is None:
        pytest.skip("rawtrace.transports._perf_drain is not built")
    return COMPILED


def measure(
    benchmark: Any, key: tuple[str, str, str], run: Callable[[], int], reset: Callable[[], None]
) -> None:
    counts: list[int] = []
    benchmark.pedantic(lambda: counts.append(run()), setup=reset, rounds=3, iterations=1)
    assert counts == [RECORDS] * 3  # every record made, in every round
    _RATES[key] = RECORDS / benchmark.stats.stats.median


@pytest.mark.parametrize("kind", ["perf", "ringbuf"])
@pytest.mark.parametrize("implementation", ["compiled", "python"])
def test_drain(benchmark: Any, kind: str, implementation: str) -> None:
    ring, drains = ring_of(kind), drains_named(implementation)
    drain = ring.open(drains)
    try:
        measure(
            benchmark, ("drain", kind, implementation), lambda: len(drain.drain().sizes), ring.reset
        )
    finally:
        drain.close()


@pytest.mark.parametrize("kind", ["perf", "ringbuf"])
@pytest.mark.parametrize("implementation", ["compiled", "python"])
def test_drain_and_decode(benchmark: Any, kind: str, implementation: str) -> None:
    ring, drains = ring_of(kind), drains_named(implementation)
    drain, decoder = ring.open(drains), Decoder()
    try:
        measure(
            benchmark,
            ("drain+decode", kind, implementation),
            lambda: len(decoder.decode(drain.drain())),
            ring.reset,
        )
    finally:
        drain.close()
    assert decoder.undecodable == 0
    # the last round's events are the records made: the hold came through, not only the count
    ring.reset()
    drain = ring.open(drains)
    try:
        events = decoder.decode(drain.drain())
    finally:
        drain.close()
    assert [e.args[1].value for e in events[:3]] == [1000, 1001, 1002]  # hold_ns
    assert [e.args[2].value for e in events[:3]] == ["exit", "signal", "execve"]  # released_by


ENCODED = min(100_000, RECORDS)


@pytest.mark.parametrize("encoder", ["json_line", "json.dumps"])
def test_json_encoding(benchmark: Any, encoder: str) -> None:
    decoder = Decoder()
    events = decoder.decode(Batch.of([payload(i) for i in range(ENCODED)]))
    encode: Callable[[Any], str] = (
        json_line
        if encoder == "json_line"
        else lambda event: json.dumps(event.to_dict(), separators=(",", ":"))
    )
    assert len(events) == ENCODED
    assert decoder.undecodable == 0
    lines: list[list[str]] = []
    benchmark.pedantic(lambda: lines.append(list(map(encode, events))), rounds=3)
    assert [len(encoded) for encoded in lines] == [ENCODED] * 3
    # json_line's template spells what json.dumps spells, for every event it timed
    assert lines[-1] == [json.dumps(e.to_dict(), separators=(",", ":")) for e in events]
    _RATES[("encode", "json", encoder)] = ENCODED / benchmark.stats.stats.median


@pytest.fixture(scope="module", autouse=True)
def rates_table() -> Iterator[None]:
    yield
    if not _RATES:
        return
    table = Table(
        f"Drain and decode: {RECORDS:,} vfork records of {len(payload(0))} bytes in one ring",
        ["stage", "transport", "implementation", "records/s", "x python"],
    )
    for (stage, kind, implementation), rate in sorted(_RATES.items()):
        python = _RATES.get((stage, kind, "python" if stage != "encode" else "json.dumps"))
        table.rows.append([stage, kind, implementation, rate, rate / python if python else ""])
    publish(table, "drain_rate")
