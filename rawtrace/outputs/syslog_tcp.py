"""Syslog over TCP: RFC 5424 messages with RFC 6587's octet-counted framing ("LEN SP MSG"),
which any message content survives, unlike newline framing.

    <14>1 2024-05-01T12:00:00.123456Z HOST rawtrace PID EVENT - {"timestamp":...}

Facility user (1), severity informational (6); the event's time in UTC to the microsecond (RFC
5424 allows six fraction digits); APP-NAME rawtrace and PROCID rawtrace's pid (the sender, as
the RFC means it; the traced process's pid is in the JSON); MSGID the event's name; no
structured data; the message is the event's JSON line, ASCII, so it needs no BOM.

Syslog over TCP has no acknowledgement: `sent` counts what was written to the socket, and a
receiver that dies can lose what its socket buffer held (Forward with requireAck cannot).
"""

from __future__ import annotations

import contextlib
import os
import socket
import time

from rawtrace.events.event import host_name
from rawtrace.outputs.destinations import Destination
from rawtrace.outputs.export_queue import Batch, Delivery

_PRI = "<14>1"  # facility user * 8 + severity informational, version 1


class SyslogConnection:
    def __init__(self, destination: Destination) -> None:
        assert not isinstance(destination.address, str)  # syslog: is tcp only
        self.address = destination.address
        # RFC 5424's HOSTNAME and PROCID: printable ASCII without spaces, "-" for none
        self._header = f" {_field(host_name(), 255)} rawtrace {os.getpid()} "
        self._socket: socket.socket | None = None
        self._second = -1
        self._clock = ""

    def connect(self, timeout: float) -> None:
        self._socket = socket.create_connection(self.address, timeout)

    def send(self, batch: Batch, timeout: float) -> Delivery:
        assert self._socket is not None  # the Exporter connects first
        frames: list[bytes] = []
        for event, line in zip(batch.events, batch.lines):
            seconds, nanos = divmod(event.timestamp, 1_000_000_000)
            if seconds != self._second:  # strftime costs more than the rest: once a second
                self._second = seconds
                self._clock = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds))
            message = (
                f"{_PRI} {self._clock}.{nanos // 1000:06d}Z{self._header}"
                f"{_field(event.event_name, 32)} - {line}"
            ).encode()
            frames += (str(len(message)).encode(), b" ", message)
        self._socket.settimeout(timeout)
        self._socket.sendall(b"".join(frames))
        return Delivery(len(batch.events), 0)

    def close(self) -> None:
        sock, self._socket = self._socket, None
        if sock is not None:
            # shutdown first: it wakes a sender thread blocked on this socket
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()


def _field(value: str, limit: int) -> str:
    """A header field: printable ASCII (33-126) only, at most `limit` characters, "-" if
    empty."""
    kept = "".join(c for c in value if 33 <= ord(c) <= 126)[:limit]
    return kept or "-"
