"""A Fluent Forward receiver for the tests, written from the protocol specification (v1) and
decoding with the `msgpack` package, independently of rawtrace's encoder.

It takes all four modes (Message, Forward, PackedForward, CompressedPackedForward), answers
`chunk` options with {"ack": chunk} unless told to withhold acks, and records every entry it
decoded as (tag, seconds, nanoseconds, record). stop() closes the listener and every connection
(a receiver killed); start() again listens on the same address.
"""

from __future__ import annotations

import contextlib
import gzip
import socket
import threading
from typing import Any

import msgpack


class EventTime:
    def __init__(self, seconds: int, nanos: int) -> None:
        self.seconds, self.nanos = seconds, nanos


def _ext(code: int, data: bytes) -> Any:
    if code == 0 and len(data) == 8:  # the spec's EventTime
        return EventTime(int.from_bytes(data[:4], "big"), int.from_bytes(data[4:], "big"))
    return msgpack.ExtType(code, data)


class ForwardReceiver:
    def __init__(self, address: tuple[str, int] | str = ("127.0.0.1", 0)) -> None:
        self.address = address
        self.entries: list[tuple[str, int, int, Any]] = []
        self.chunks: list[str] = []  # chunk ids received, acked or not, in order
        self.messages = 0
        self.withhold_acks = False
        self.read = threading.Event()  # cleared: a stalled reader, reading nothing
        self.read.set()
        self.lock = threading.Lock()
        self._listener: socket.socket | None = None
        self._connections: list[socket.socket] = []
        self._threads: list[threading.Thread] = []

    def start(self) -> ForwardReceiver:
        if isinstance(self.address, str):
            listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        else:
            listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(self.address)
        listener.listen(8)
        if not isinstance(self.address, str):
            self.address = listener.getsockname()
        self._listener = listener
        thread = threading.Thread(target=self._accept, args=(listener,), daemon=True)
        thread.start()
        self._threads.append(thread)
        return self

    @property
    def port(self) -> int:
        assert not isinstance(self.address, str)
        return self.address[1]

    def stop(self) -> None:
        listener, self._listener = self._listener, None
        if listener is not None:
            listener.shutdown(socket.SHUT_RDWR)
            listener.close()
        with self.lock:
            connections, self._connections = self._connections, []
        for connection in connections:
            connection.shutdown(socket.SHUT_RDWR)
            connection.close()
        for thread in self._threads:
            thread.join(5)
        self._threads = []

    def __enter__(self) -> ForwardReceiver:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                connection, _ = listener.accept()
            except OSError:
                return  # stopped
            with self.lock:
                self._connections.append(connection)
            thread = threading.Thread(target=self._serve, args=(connection,), daemon=True)
            thread.start()
            self._threads.append(thread)

    def _serve(self, connection: socket.socket) -> None:
        unpacker = msgpack.Unpacker(ext_hook=_ext, raw=False)
        while True:
            self.read.wait(10)
            try:
                data = connection.recv(65536)
            except OSError:
                return
            if not data:
                return
            unpacker.feed(data)
            for message in unpacker:
                self._take(connection, message)

    def _take(self, connection: socket.socket, message: list[Any]) -> None:
        tag, rest = message[0], message[1:]
        option: dict[str, Any] = {}
        if isinstance(rest[0], (bytes, str)):  # (Compressed)PackedForward
            stream = rest[0].encode() if isinstance(rest[0], str) else rest[0]
            option = rest[1] if len(rest) > 1 else {}
            if option.get("compressed") == "gzip":
                stream = gzip.decompress(stream)
            unpacker = msgpack.Unpacker(ext_hook=_ext, raw=False)
            unpacker.feed(stream)
            entries = list(unpacker)
        elif isinstance(rest[0], list):  # Forward
            entries, option = rest[0], rest[1] if len(rest) > 1 else {}
        else:  # Message: time, record
            entries, option = [rest[:2]], rest[2] if len(rest) > 2 else {}
        if "size" in option:
            assert option["size"] == len(entries), (option, len(entries))
        with self.lock:
            self.messages += 1
            for time, record in entries:
                if isinstance(time, EventTime):
                    self.entries.append((tag, time.seconds, time.nanos, record))
                else:  # an integer time: seconds only
                    self.entries.append((tag, int(time), 0, record))
            if "chunk" in option:
                self.chunks.append(option["chunk"])
        if "chunk" in option and not self.withhold_acks:
            with contextlib.suppress(OSError):  # the sender went away: it sends again
                connection.sendall(msgpack.packb({"ack": option["chunk"]}))

    def records(self) -> list[Any]:
        with self.lock:
            return [record for _, _, _, record in self.entries]
