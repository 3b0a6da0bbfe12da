"""(1) Drain and decode over a synthetic ring of 1M records: compiled against pure Python, for
both transports, in records/s; and the JSON encoder against json.dumps."""

from __future__ import annotations

import json
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Callable

import pytest
from bench_report import Table, publish

from bpf_bytecode.programs.record import SYSCALL_RECORD
from rawtrace.events.decoding import Decoder
from rawtrace.outputs.formats import json_line
from rawtrace.transports.batch import Batch
from rawtrace.transports.drain import COMPILED, PYTHON, Drains, RingDrain
from rawtrace.transports.perf_ring import DATA_HEAD, HEADER, RECORD_SAMPLE

RECORDS = 1_000_000
RING = 1 << 27  # 128 MiB: room for 1M records of either transport
FIELDS = len(SYSCALL_RECORD.unpack(bytes(SYSCALL_RECORD.size)))


def payload(i: int) -> bytes:
    context = (10**12 + i, 10**12, (4242 << 32) | 4242, 0, 1, b"storm", 58, i % 2)
    return SYSCALL_RECORD.pack(*context, *[0] * (FIELDS - 9), 100_000 + i % 30_000)


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
    """A ring full of 1M records; reset() puts the consumer back at the start."""

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
    # 1,000 distinct records repeated: building a million one by one would dominate the run
    make = perf_record if kind == "perf" else ringbuf_record
    block = b"".join(make(i) for i in range(1000))
    stream = block * (RECORDS // 1000)
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
    assert set(counts) == {RECORDS}
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


ENCODED = 100_000


@pytest.mark.parametrize("encoder", ["json_line", "json.dumps"])
def test_json_encoding(benchmark: Any, encoder: str) -> None:
    events = Decoder().decode(Batch.of([payload(i) for i in range(ENCODED)]))
    encode: Callable[[Any], str] = (
        json_line
        if encoder == "json_line"
        else lambda event: json.dumps(event.to_dict(), separators=(",", ":"))
    )
    counts: list[int] = []
    benchmark.pedantic(lambda: counts.append(len(list(map(encode, events)))), rounds=3)
    _RATES[("encode", "json", encoder)] = ENCODED / benchmark.stats.stats.median


@pytest.fixture(scope="module", autouse=True)
def rates_table() -> Iterator[None]:
    yield
    if not _RATES:
        return
    table = Table(
        f"Drain and decode: {RECORDS:,} records of {SYSCALL_RECORD.size} bytes in one ring",
        ["stage", "transport", "implementation", "records/s", "x python"],
    )
    for (stage, kind, implementation), rate in sorted(_RATES.items()):
        python = _RATES.get((stage, kind, "python" if stage != "encode" else "json.dumps"))
        table.rows.append([stage, kind, implementation, rate, rate / python if python else ""])
    publish(table, "drain_rate")
