"""Transports: how records travel from the programs to user space. Each has a kernel half (the
Output the program builders emit) and a user half (a RingReader); open_transport makes both."""

from __future__ import annotations

from contextlib import ExitStack
from dataclasses import dataclass
from typing import Protocol

from bpf_bytecode.programs.output import Output, PerfOutput
from kernel_compat import online_cpus, possible_cpus
from rawtrace.bpf import MapType
from rawtrace.maps import Map
from rawtrace.perf_reader import PerfReader


class RingReader(Protocol):
    def fileno(self) -> int:
        """An fd that turns readable when records are waiting (for select/epoll/asyncio)."""
        ...

    def wait(self, timeout: float | None) -> None:
        """Block until records may be waiting, or timeout seconds pass (None: no limit)."""
        ...

    def drain(self) -> list[bytes]:
        """Every record now waiting, as raw payloads."""
        ...

    def lost_per_cpu(self) -> dict[int, int]:
        """Records the kernel could not deliver so far, per CPU."""
        ...

    def close(self) -> None: ...


@dataclass
class Transport:
    name: str
    output: Output  # what the programs emit into
    reader: RingReader


def open_perf_transport(resources: ExitStack, pages: int) -> Transport:
    """A perf event array with a ring per online CPU; everything is owned by `resources`."""
    events_map = resources.enter_context(
        Map.create(
            MapType.PERF_EVENT_ARRAY,
            key_size=4,
            value_size=4,
            max_entries=max(possible_cpus()) + 1,
            name="rawtrace_events",
        )
    )
    reader = PerfReader(events_map, online_cpus(), pages)
    resources.callback(reader.close)
    return Transport("perf", PerfOutput(events_map.fileno()), reader)
