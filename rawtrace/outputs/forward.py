"""Fluent Forward protocol v1 (github.com/fluent/fluentd/wiki/Forward-Protocol-Specification-v1),
the subset a sender needs, written with the standard library.

Each batch is one PackedForward message: [tag, entries, option], where entries is a bin of
concatenated [EventTime, record] entries and option is {"size": N} plus, with requireAck, a
{"chunk": ID} that the receiver answers with {"ack": ID}. EventTime is MessagePack ext type 0:
seconds and nanoseconds, two big-endian uint32. The record is Tracee's: {"event": JSON line},
so a Fluent Bit pipeline built for Tracee's forward output takes rawtrace's unchanged.

A batch resent after a missing ack keeps its chunk id, so a receiver may recognise it.
"""

from __future__ import annotations

import base64
import contextlib
import os
import socket
import struct

from rawtrace.outputs.destinations import Destination
from rawtrace.outputs.export_queue import Batch, Delivery, SendFailed

_SECONDS_NANOS = struct.Struct(">II")
# fixarray(2), then fixext8 (0xd7) of ext type 0: EventTime
_ENTRY_START = b"\x92\xd7\x00"
_EVENT_KEY = b"\x81\xa5event"  # fixmap(1), fixstr "event"
_MAX_ACK = 4096  # bytes of an ack response read at most: {"ack": 24 characters} is 30


def str_header(size: int) -> bytes:
    """MessagePack's str header for `size` bytes of UTF-8."""
    if size < 32:
        return bytes([0xA0 | size])
    if size < 1 << 8:
        return b"\xd9" + size.to_bytes(1, "big")
    if size < 1 << 16:
        return b"\xda" + size.to_bytes(2, "big")
    return b"\xdb" + size.to_bytes(4, "big")


def bin_header(size: int) -> bytes:
    if size < 1 << 8:
        return b"\xc4" + size.to_bytes(1, "big")
    if size < 1 << 16:
        return b"\xc5" + size.to_bytes(2, "big")
    return b"\xc6" + size.to_bytes(4, "big")


def uint(value: int) -> bytes:
    """A non-negative int in MessagePack's smallest form."""
    if value < 0x80:
        return bytes([value])
    for code, size in ((0xCC, 1), (0xCD, 2), (0xCE, 4), (0xCF, 8)):
        if value < 1 << (8 * size):
            return bytes([code]) + value.to_bytes(size, "big")
    raise ValueError(f"{value} does not fit a uint64")


def text(value: str) -> bytes:
    data = value.encode()
    return str_header(len(data)) + data


def entries(batch: Batch) -> bytes:
    """The batch's [EventTime, {"event": line}] entries, back to back."""
    pack = _SECONDS_NANOS.pack
    parts: list[bytes] = []
    for event, line in zip(batch.events, batch.lines):
        data = line.encode()  # ASCII: json_line escapes everything else
        parts += (
            _ENTRY_START,
            pack(*divmod(event.timestamp, 1_000_000_000)),
            _EVENT_KEY,
            str_header(len(data)),
            data,
        )
    return b"".join(parts)


def packed_forward(tag: str, batch: Batch, chunk: str | None) -> bytes:
    """One PackedForward message for the batch."""
    stream = entries(batch)
    option = b"\x81\xa4size" + uint(len(batch.events))
    if chunk is not None:
        option = b"\x82\xa4size" + uint(len(batch.events)) + b"\xa5chunk" + text(chunk)
    return b"\x93" + text(tag) + bin_header(len(stream)) + stream + option


def parse_ack(data: bytes) -> str | None:
    """The chunk id of a complete {"ack": ID} response, None while more bytes are needed;
    ValueError for anything else."""
    if not data:
        return None
    if data[0] != 0x81:  # fixmap of one entry
        raise ValueError(f"not an ack response: {data[:16]!r}")
    key, at = _str(data, 1)
    if key is None:
        return None
    if key != "ack":
        raise ValueError(f"not an ack response: {data[:16]!r}")
    value, _ = _str(data, at)
    return value


def _str(data: bytes, at: int) -> tuple[str | None, int]:
    """The str at data[at:] and the offset after it; None while it is incomplete."""
    if at >= len(data):
        return None, at
    code = data[at]
    if code & 0xE0 == 0xA0:
        size, start = code & 0x1F, at + 1
    elif code in (0xD9, 0xDA, 0xDB):
        width = {0xD9: 1, 0xDA: 2, 0xDB: 4}[code]
        if at + 1 + width > len(data):
            return None, at
        size, start = int.from_bytes(data[at + 1 : at + 1 + width], "big"), at + 1 + width
    else:
        raise ValueError(f"expected a MessagePack str, found 0x{code:02x}")
    if start + size > len(data):
        return None, at
    return data[start : start + size].decode(), start + size


class ForwardConnection:
    """A Forward destination's socket: TCP or a unix socket."""

    def __init__(self, destination: Destination) -> None:
        self.destination = destination
        self._socket: socket.socket | None = None
        # the last batch and its chunk id: the Exporter resends the same Batch object
        self._last: tuple[Batch, str] | None = None

    def connect(self, timeout: float) -> None:
        address = self.destination.address
        if isinstance(address, str):
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                sock.settimeout(timeout)
                sock.connect(address)
            except BaseException:
                sock.close()
                raise
        else:
            sock = socket.create_connection(address, timeout)
        self._socket = sock

    def send(self, batch: Batch, timeout: float) -> Delivery:
        sock = self._socket
        assert sock is not None  # the Exporter connects first
        chunk = None
        if self.destination.require_ack:
            if self._last is None or self._last[0] is not batch:
                self._last = (batch, base64.b64encode(os.urandom(16)).decode())
            chunk = self._last[1]
        sock.settimeout(timeout)
        sock.sendall(packed_forward(self.destination.tag, batch, chunk))
        if chunk is None:
            return Delivery(len(batch.events), 0)
        if self._read_ack(sock) != chunk:
            raise SendFailed("the receiver acknowledged another chunk")
        return Delivery(len(batch.events), len(batch.events))

    def _read_ack(self, sock: socket.socket) -> str:
        data = b""
        while len(data) < _MAX_ACK:
            received = sock.recv(_MAX_ACK - len(data))
            if not received:
                raise SendFailed("the receiver closed the connection before its ack")
            data += received
            try:
                ack = parse_ack(data)
            except ValueError as exc:
                raise SendFailed(str(exc)) from None
            if ack is not None:
                return ack
        raise SendFailed("the receiver's ack is too long")

    def close(self) -> None:
        sock, self._socket = self._socket, None
        if sock is not None:
            # shutdown first: it wakes a sender thread blocked on this socket
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()
