"""The low-level layer, for what event declarations cannot say: typed maps, loading your own
program, attaching it, reading raw records from the rings. Programs are written with
bpf_bytecode's builders (bpf_bytecode.asm: moves, ALU, jumps, loads and stores, `call`,
`atomic`/`atomic_add64`; bpf_bytecode.fragments: map lookups and updates).

Everything returned owns its kernel object: close it, or use it as a context manager.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator, Sequence
from contextlib import ExitStack
from typing import Any

from bpf_bytecode import Item
from bpf_bytecode.programs.output import Output
from rawtrace.attach.kprobe import KprobePmu
from rawtrace.attach.perf_attach import PerfEventLink
from rawtrace.attach.tracepoint import attach_tracepoint as _attach_tracepoint
from rawtrace.errors import RawtraceError, VerifierError
from rawtrace.kernel import bpf
from rawtrace.kernel.bpf import MapType, ProgType
from rawtrace.kernel.fd import OwnedFd
from rawtrace.kernel.loading import Program, load_program
from rawtrace.kernel.maps import Map
from rawtrace.kernel.tracefs_mount import ensure_tracefs
from rawtrace.transports.opening import RingReader, open_transport

__all__ = [
    "MapType",
    "ProgType",
    "Program",
    "RawRing",
    "TypedMap",
    "attach_kprobe",
    "attach_raw_tracepoint",
    "attach_tracepoint",
    "load",
]


class TypedMap:
    """A BPF map whose keys and values are struct formats ("<I", "<QQ", ...): one field reads
    as its value, several as a tuple."""

    def __init__(self, raw: Map, key: str, value: str) -> None:
        self.map = raw
        self._key, self._value = struct.Struct(key), struct.Struct(value)

    @classmethod
    def create(
        cls, map_type: MapType, key: str, value: str, max_entries: int, name: str = "user_map"
    ) -> TypedMap:
        sizes = struct.calcsize(key), struct.calcsize(value)
        raw = Map.create(
            map_type, key_size=sizes[0], value_size=sizes[1], max_entries=max_entries, name=name
        )
        return cls(raw, key, value)

    def fileno(self) -> int:
        """The map's fd, for bpf_bytecode's map fragments (ld_map_fd)."""
        return self.map.fileno()

    def _pack(self, layout: struct.Struct, value: Any) -> bytes:
        return layout.pack(*value) if isinstance(value, tuple) else layout.pack(value)

    def _unpack(self, layout: struct.Struct, data: bytes) -> Any:
        values = layout.unpack(data)
        return values[0] if len(values) == 1 else values

    def __getitem__(self, key: Any) -> Any:
        data = self.map.lookup(self._pack(self._key, key))
        if data is None:
            raise KeyError(key)
        return self._unpack(self._value, data)

    def get(self, key: Any, default: Any = None) -> Any:
        try:
            return self[key]
        except KeyError:
            return default

    def __setitem__(self, key: Any, value: Any) -> None:
        self.map.update(self._pack(self._key, key), self._pack(self._value, value))

    def __delitem__(self, key: Any) -> None:
        self.map.delete(self._pack(self._key, key))

    def items(self) -> Iterator[tuple[Any, Any]]:
        for key, value in self.map.items():
            yield self._unpack(self._key, key), self._unpack(self._value, value)

    def close(self) -> None:
        self.map.close()

    def __enter__(self) -> TypedMap:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def load(name: str, prog_type: ProgType, program: Sequence[Item]) -> Program:
    """Assemble and load your program. A rejection raises VerifierError with the verifier's
    log (`.log`): the program's to fix, not rawtrace's."""
    try:
        return load_program(name, prog_type, program)
    except VerifierError as exc:
        raise VerifierError(
            name, exc.errno, exc.log, fix="the verifier's log (.log) says which instruction"
        ) from None


def attach_tracepoint(program: Program, tracepoint: str) -> PerfEventLink:
    """Attach a TRACEPOINT program to "category:name"; close the link to detach."""
    category, _, name = tracepoint.partition(":")
    return _attach_tracepoint(program, ensure_tracefs(), category, name)


class _RawLink(OwnedFd):
    """A raw tracepoint attachment: closing the fd detaches."""


def attach_raw_tracepoint(program: Program, name: str) -> OwnedFd:
    """Attach a RAW_TRACEPOINT program to tracepoint `name` (sched_process_exec, sys_enter)."""
    try:
        return _RawLink(bpf.raw_tracepoint_open(name, program.fileno()))
    except OSError as exc:
        raise RawtraceError(
            f"cannot attach to raw tracepoint {name!r}: {exc.strerror}",
            "name a tracepoint of this kernel (tracefs available_events, without category)",
        ) from exc


def attach_kprobe(program: Program, symbol: str, *, retprobe: bool = False) -> PerfEventLink:
    """Attach a KPROBE program at kernel function `symbol`'s entry, or with `retprobe` at its
    return, through the kprobe PMU (4.17)."""
    return KprobePmu.create().attach_probe(program, symbol, retprobe)


class RawRing:
    """Rings for your programs' records: `output` is what they emit into (bpf_bytecode's
    emit_output), read() the records since the last read, each cut to `record_size` bytes
    (perf rings pad each record to 8 bytes with their size field; the ring buffer does not)."""

    def __init__(self, record_size: int, transport: str = "auto", pages: int = 64) -> None:
        self.record_size = record_size
        self._resources = ExitStack()
        opened = open_transport(transport, self._resources, pages)
        self.output: Output = opened.output
        self.reader: RingReader = opened.reader
        self.transport = opened.name

    def read(self) -> list[bytes]:
        return [
            payload[: self.record_size]
            for batch in self.reader.drain()
            for payload in batch.payloads()
        ]

    def fileno(self) -> int:
        return self.reader.fileno()

    def close(self) -> None:
        self._resources.close()

    def __enter__(self) -> RawRing:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
