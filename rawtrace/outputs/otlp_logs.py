"""OTLP/HTTP logs with the JSON encoding (opentelemetry.io/docs/specs/otlp/#otlphttp), written
with the standard library: one ExportLogsServiceRequest per batch, POSTed to /v1/logs.

Resource attributes service.name=rawtrace and host.name; each log record has the event's time,
its name (eventName, and the event.name attribute for receivers older than proto 1.5), the
Tracee-shaped JSON line as its string body, process.pid, and container.id where the event is in
a container. 64-bit integers are JSON strings, as the protobuf JSON mapping writes them.

Responses (the OTLP spec's rules): 2xx accepted, less a partial success's rejectedLogRecords
(dropped); 429, 502, 503, 504 retried after Retry-After when the server gives it, else with
backoff; every other status (400, 413, ...) is not retried: the batch is dropped and counted.
"""

from __future__ import annotations

import email.utils
import http.client
import json
import time
from json.encoder import encode_basestring_ascii as _string

from rawtrace.events.event import host_name
from rawtrace.outputs.destinations import Destination
from rawtrace.outputs.export_queue import Batch, Delivery, SendFailed

RETRIED = frozenset((429, 502, 503, 504))
# templates, as in rawtrace.outputs.formats: strings pass through json's escaper
_HEAD = '{"resourceLogs":[{"resource":{"attributes":%s},"scopeLogs":[{"scope":{"name":"rawtrace"},'
_RECORD = (
    # INFO: an event, not a failure
    '{"timeUnixNano":"%d","severityNumber":9,"severityText":"INFO","eventName":%s,'
    '"body":{"stringValue":%s},"attributes":[%s]}'
)
_NAME = '{"key":"event.name","value":{"stringValue":%s}}'
_PID = '{"key":"process.pid","value":{"intValue":"%d"}}'
_CONTAINER = '{"key":"container.id","value":{"stringValue":%s}}'


class OtlpConnection:
    def __init__(self, destination: Destination) -> None:
        assert not isinstance(destination.address, str)  # otlp: is http only
        self.host, self.port = destination.address
        self.path = destination.path
        self._http: http.client.HTTPConnection | None = None
        resource = _attributes([("service.name", "rawtrace"), ("host.name", host_name())])
        self._head = _HEAD % resource + '"logRecords":['

    def connect(self, timeout: float) -> None:
        self._http = http.client.HTTPConnection(self.host, self.port, timeout=timeout)
        self._http.connect()

    def send(self, batch: Batch, timeout: float) -> Delivery:
        http_connection = self._http
        assert http_connection is not None  # the Exporter connects first
        http_connection.timeout = timeout
        if http_connection.sock is None:  # the server closed it after its last response
            http_connection.connect()
        else:
            http_connection.sock.settimeout(timeout)
        body = self.request(batch).encode()
        headers = {"Content-Type": "application/json"}
        http_connection.request("POST", self.path, body, headers)
        response = http_connection.getresponse()
        data = response.read()
        count = len(batch.events)
        if 200 <= response.status < 300:
            rejected = min(count, _rejected(data))
            return Delivery(count - rejected, count - rejected, rejected)
        if response.status in RETRIED:
            retry_after = _retry_after(response.getheader("Retry-After"))
            raise SendFailed(f"HTTP {response.status} {response.reason}", retry_after)
        return Delivery(0, 0, count)  # the spec: do not retry; the data is dropped

    def request(self, batch: Batch) -> str:
        """The ExportLogsServiceRequest of a batch, as JSON."""
        records = []
        for event, line in zip(batch.events, batch.lines):
            name = _string(event.event_name)
            attributes = _NAME % name + "," + _PID % event.process_id
            if event.container_id:
                attributes += "," + _CONTAINER % _string(event.container_id)
            records.append(_RECORD % (event.timestamp, name, _string(line), attributes))
        return self._head + ",".join(records) + "]}]}]}"

    def close(self) -> None:
        http_connection, self._http = self._http, None
        if http_connection is not None:
            http_connection.close()


def _attributes(pairs: list[tuple[str, str]]) -> str:
    return json.dumps([{"key": k, "value": {"stringValue": v}} for k, v in pairs])


def _rejected(data: bytes) -> int:
    """partialSuccess.rejectedLogRecords of a response body, 0 if there is none."""
    try:
        partial = json.loads(data or b"{}").get("partialSuccess") or {}
        return int(partial.get("rejectedLogRecords", 0))
    except (ValueError, AttributeError, TypeError):
        return 0  # a body that is not OTLP JSON: the 2xx says accepted


def _retry_after(value: str | None) -> float | None:
    """Retry-After's seconds, or its HTTP date as seconds from now; None if absent or bad."""
    if not value:
        return None
    if value.strip().isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())
