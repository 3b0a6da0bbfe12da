"""Ring drains: one call per wakeup per ring walks every ready record, hands the batch back and
gives the space to the kernel (data_tail or consumer_pos, stored once per batch).

Two implementations with the same results, byte for byte: C compiled by cffi at install time
(rawtrace.transports._perf_drain, see _drain_build.py) and the pure-Python parsers of perf_ring and
ringbuf_ring, for when the compiled module is absent (no compiler at install, a zip import).
DRAINS picks one, here and nowhere else.
"""

from __future__ import annotations

import importlib
import zipimport
from dataclasses import dataclass
from types import ModuleType
from typing import Any, Callable, Protocol

from rawtrace.transports import perf_ring, ringbuf_ring
from rawtrace.transports.batch import Batch


def _import_compiled() -> tuple[ModuleType | None, str | None]:
    """The compiled drain module, or None and why it cannot load, in words for a warning."""
    try:
        return importlib.import_module("rawtrace.transports._perf_drain"), None
    except ModuleNotFoundError as exc:
        if exc.name == "_cffi_backend":  # the module's init imports cffi's backend
            return None, "cffi is not installed"
        if __spec__ is not None and isinstance(__spec__.loader, zipimport.zipimporter):
            return None, "rawtrace runs from a zip, where a compiled module cannot load"
        return None, "the compiled drain was not built (no C compiler at install)"
    except ImportError as exc:  # built for another platform, or a libc too old
        return None, f"the compiled drain does not load: {exc}"


# COMPILED_MISSING: why the Python drains run (the CLI warns with it), None where compiled ones do
_compiled, COMPILED_MISSING = _import_compiled()


class RingDrain(Protocol):
    def drain(self) -> Batch:
        """Every record now ready in the ring; the ring's space is given back."""
        ...

    def close(self) -> None:
        """Let go of the ring's memory (it must be closed before the mmap)."""
        ...


PerfDrainFactory = Callable[[memoryview, memoryview], RingDrain]
"""(metadata page, data pages) -> the drain of one perf ring"""
RingbufDrainFactory = Callable[[memoryview, memoryview, memoryview], RingDrain]
"""(consumer page, producer page, data pages mapped twice) -> the drain of a BPF ring buffer"""


@dataclass(frozen=True)
class Drains:
    name: str
    perf: PerfDrainFactory
    ringbuf: RingbufDrainFactory


class _PythonPerfDrain:
    def __init__(self, page: memoryview, data: memoryview) -> None:
        self._page, self._data = page, data

    def drain(self) -> Batch:
        return perf_ring.drain(self._page, self._data)

    def close(self) -> None:
        pass  # it holds no exports of the ring's memory


class _PythonRingbufDrain:
    def __init__(self, consumer: memoryview, producer: memoryview, data: memoryview) -> None:
        self._consumer, self._producer, self._data = consumer, producer, data

    def drain(self) -> Batch:
        return ringbuf_ring.drain(self._consumer, self._producer, self._data)

    def close(self) -> None:
        pass


PYTHON = Drains("python", _PythonPerfDrain, _PythonRingbufDrain)


class _CompiledDrain:
    """The buffers one C drain fills: big enough for a whole ring of records (see the bounds
    argument in _drain_build.py), allocated once per ring."""

    def __init__(self, lib: Any, ffi: Any, size: int) -> None:
        self._lib, self._ffi, self._size = lib, ffi, size
        self._out = ffi.new("uint8_t[]", size)
        self._max_records = size // 8
        self._sizes = ffi.new("uint32_t[]", self._max_records)
        self._batch = ffi.new("struct rt_batch *")
        self._pointers: list[Any] = []

    def _pointer(self, view: memoryview) -> Any:
        # held for the ring's life and released in close(): an mmap cannot close while
        # exported
        pointer = self._ffi.from_buffer("uint8_t[]", view)
        self._pointers.append(pointer)
        return pointer

    def _result(self, status: int) -> Batch:
        if status != 0:
            raise ValueError(f"a ring of {self._size} bytes is not a power of two")
        batch = self._batch
        return Batch(
            self._ffi.buffer(self._out, batch.used)[:],
            self._ffi.unpack(self._sizes, batch.records),
            batch.lost,
            batch.malformed,
        )

    def close(self) -> None:
        pointers, self._pointers = self._pointers, []
        for pointer in pointers:
            self._ffi.release(pointer)


class _CompiledPerfDrain(_CompiledDrain):
    def __init__(self, compiled: ModuleType, page: memoryview, data: memoryview) -> None:
        super().__init__(compiled.lib, compiled.ffi, len(data))
        self._page, self._data = self._pointer(page), self._pointer(data)

    def drain(self) -> Batch:
        status = self._lib.rt_perf_drain(
            self._page,
            self._data,
            self._size,
            self._out,
            self._size,
            self._sizes,
            self._max_records,
            self._batch,
        )
        return self._result(status)


class _CompiledRingbufDrain(_CompiledDrain):
    def __init__(
        self, compiled: ModuleType, consumer: memoryview, producer: memoryview, data: memoryview
    ) -> None:
        super().__init__(compiled.lib, compiled.ffi, len(data) // 2)
        self._consumer = self._pointer(consumer)
        self._producer = self._pointer(producer)
        self._data = self._pointer(data)

    def drain(self) -> Batch:
        status = self._lib.rt_ringbuf_drain(
            self._consumer,
            self._producer,
            self._data,
            self._size,
            self._out,
            self._size,
            self._sizes,
            self._max_records,
            self._batch,
        )
        return self._result(status)


def _compiled_drains(compiled: ModuleType) -> Drains:
    def perf(page: memoryview, data: memoryview) -> RingDrain:
        return _CompiledPerfDrain(compiled, page, data)

    def ringbuf(consumer: memoryview, producer: memoryview, data: memoryview) -> RingDrain:
        return _CompiledRingbufDrain(compiled, consumer, producer, data)

    return Drains("compiled", perf, ringbuf)


COMPILED: Drains | None = None if _compiled is None else _compiled_drains(_compiled)

DRAINS: Drains = COMPILED or PYTHON
"""The drains the readers use: compiled where it was built, Python otherwise."""
