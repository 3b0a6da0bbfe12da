"""Destinations as sinks of a Tracer: `Tracer(..., sinks=[sink("forward:tcp://...")])` hands
every event it reads (run(), iteration, `async for`) to each sink, closes them at the end and
reports their counts in stats().exports.

One wire format per module behind the Connection interface (rawtrace.outputs.export_queue);
this table is the one place that names them.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from typing import Any, Callable

from rawtrace.errors import RawtraceError
from rawtrace.events.event import Event
from rawtrace.outputs.destinations import Destination, parse_output
from rawtrace.outputs.export_queue import Connection, Exporter, ExportStats
from rawtrace.outputs.forward import ForwardConnection
from rawtrace.outputs.otlp_logs import OtlpConnection
from rawtrace.outputs.syslog_tcp import SyslogConnection

_CONNECTIONS: dict[str, Callable[[Destination], Connection]] = {
    "forward": ForwardConnection,
    "otlp": OtlpConnection,
    "syslog": SyslogConnection,
}


class Sink(Exporter):
    """A network destination's Exporter; `only` keeps the events of those names (the CLI's
    --summary traces lifecycle events that it does not print)."""

    def __init__(
        self, destination: Destination, only: Collection[str] | None = None, **limits: Any
    ) -> None:
        super().__init__(destination.text, _CONNECTIONS[destination.kind](destination), **limits)
        self.destination = destination
        self.only = None if only is None else frozenset(only)

    def send(self, events: Sequence[Event]) -> None:
        if self.only is not None:
            events = [event for event in events if event.event_name in self.only]
        super().send(events)


class Sinks:
    """A Tracer's sinks: fed together, closed together (so that their flush deadlines run at
    once, not one after the other)."""

    def __init__(self, sinks: Sequence[Exporter]) -> None:
        self.sinks = tuple(sinks)

    def send(self, events: list[Event]) -> list[Event]:
        """Give the events to every sink; the events, for the Tracer's reader."""
        for each in self.sinks:
            each.send(events)
        return events

    def close(self) -> None:
        for each in self.sinks:
            each.start_closing()
        for each in self.sinks:
            each.close()

    def stats(self) -> tuple[ExportStats, ...]:
        return tuple(each.stats() for each in self.sinks)


def sink(destination: str | Destination, **options: Any) -> Sink:
    """A Sink for a destination such as "forward:tcp://127.0.0.1:24224?requireAck=true";
    options: only, max_events, max_bytes, max_batch, flush_seconds, io_timeout."""
    if isinstance(destination, str):
        parsed = parse_output(destination)
        if not isinstance(parsed, Destination):
            raise RawtraceError(
                f"{destination!r} is not a network destination",
                "write it as forward:..., otlp:http://... or syslog:tcp://...",
            )
        destination = parsed
    return Sink(destination, **options)


__all__ = ["ExportStats", "Sink", "Sinks", "sink"]
