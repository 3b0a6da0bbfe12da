"""OTLP/HTTP JSON against a receiver that parses with opentelemetry-proto: the records' fields,
and the response rules with exact accounting (503 with Retry-After, 400, a partial success)."""

from __future__ import annotations

import json
import socket
import time

from otlp_receiver import OtlpReceiver

from rawtrace.events.event import Arg, Event
from rawtrace.outputs.formats import json_line
from rawtrace.outputs.sinks import sink


def _events(count: int, container: str = "") -> list[Event]:
    args = (Arg("pathname", "const char*", "/bin/\u00e9"),)
    fields = (0, "sh", 1, 59, "execve", "execve", 0, args)
    return [
        Event(1_700_000_000_000_000_000 + n, 0, 0, *[100 + n] * 4, *fields, container_id=container)
        for n in range(count)
    ]


def _values(attributes: object) -> dict[str, object]:
    return {a.key: getattr(a.value, a.value.WhichOneof("value")) for a in attributes}  # type: ignore[attr-defined]


def test_records_carry_the_event() -> None:
    with OtlpReceiver() as receiver:
        exporter = sink(f"otlp:http://127.0.0.1:{receiver.port}/v1/logs")
        events = _events(3, container="c" * 64)
        exporter.send(events)
        exporter.close()
    stats = exporter.stats()
    assert (stats.offered, stats.sent, stats.acknowledged, stats.dropped) == (3, 3, 3, 0)
    (request,) = receiver.requests
    resource = _values(request.resource_logs[0].resource.attributes)
    assert resource == {"service.name": "rawtrace", "host.name": socket.gethostname()}
    for record, event in zip(receiver.records(), events):
        assert record.time_unix_nano == event.timestamp
        assert record.event_name == "execve"
        assert record.body.string_value == json_line(event)
        assert json.loads(record.body.string_value) == event.to_dict()
        attributes = _values(record.attributes)
        assert attributes == {"event.name": "execve", "process.pid": event.process_id,
                              "container.id": "c" * 64}  # fmt: skip


def test_503_with_retry_after_is_retried_after_it() -> None:
    with OtlpReceiver() as receiver:
        receiver.responses = [(503, {"Retry-After": "1"}, b"")]
        exporter = sink(f"otlp:http://127.0.0.1:{receiver.port}", flush_seconds=10)
        started = time.monotonic()
        exporter.send(_events(5))
        exporter.close()
        took = time.monotonic() - started
    stats = exporter.stats()
    assert (stats.sent, stats.retried, stats.dropped, stats.unsent) == (5, 5, 0, 0)
    assert len(receiver.requests) == 2 and took >= 1.0  # Retry-After honoured, not backoff's 0.1


def test_400_is_dropped_not_retried() -> None:
    with OtlpReceiver() as receiver:
        receiver.responses = [(400, {}, b'{"code":3}'), (413, {}, b"")]
        exporter = sink(f"otlp:http://127.0.0.1:{receiver.port}")
        exporter.send(_events(5))
        exporter.send(_events(2))
        exporter.send(_events(1))
        exporter.close()
    stats = exporter.stats()
    assert (stats.offered, stats.sent, stats.dropped, stats.retried, stats.unsent) == (
        8,
        1,
        7,
        0,
        0,
    )
    assert len(receiver.requests) == 3


def test_partial_success_counts_rejected_as_dropped() -> None:
    partial = b'{"partialSuccess":{"rejectedLogRecords":"2","errorMessage":"too old"}}'
    with OtlpReceiver() as receiver:
        receiver.responses = [(200, {}, partial)]
        exporter = sink(f"otlp:http://127.0.0.1:{receiver.port}")
        exporter.send(_events(5))
        exporter.close()
    stats = exporter.stats()
    assert (stats.sent, stats.acknowledged, stats.dropped, stats.unsent) == (3, 3, 2, 0)
