"""The network never stalls tracing: a bounded queue between the reading thread and one sender
thread per destination, with exact accounting.

The reader calls Exporter.send(events) with each read's events: they are queued whole while the
queue has room (in events and in bytes of JSON), and what does not fit is dropped and counted.
The sender thread takes batches from the queue and hands them to a Connection (one per wire
format: forward, otlp_logs, syslog_tcp). A receiver that is down, at the start or later, is
retried with exponential backoff and jitter, the same batch again; a batch that may have reached
the receiver before the failure is counted as retried (possible duplicates). close() lets the
sender empty the queue until a deadline, then counts what is left as unsent.

For every destination: offered == sent + dropped + unsent, where `sent` is what the receiver
took (acknowledged, where it acknowledges), `dropped` what the full queue or the receiver
refused, `unsent` what was still queued or unconfirmed at the end.
"""

from __future__ import annotations

import collections
import logging
import random
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import NamedTuple, Protocol

from rawtrace.events.event import Event
from rawtrace.outputs.formats import json_line

log = logging.getLogger("rawtrace")

MAX_EVENTS = 65536  # queued per destination: a few seconds of a busy host
MAX_BYTES = 64 << 20  # of JSON lines queued per destination
MAX_BATCH = 2000  # events per message to the receiver
FLUSH_SECONDS = 2.0  # what close() gives the sender to empty the queue
_BACKOFF_FIRST, _BACKOFF_MAX = 0.1, 5.0  # seconds


@dataclass(frozen=True)
class ExportStats:
    """One destination's counts; offered == sent + dropped + unsent."""

    destination: str
    offered: int  # events given to the destination
    sent: int  # taken by the receiver (acknowledged where it acknowledges)
    acknowledged: int  # confirmed by the receiver (Forward acks, OTLP responses)
    dropped: int  # refused: the queue was full, or the receiver rejected them
    retried: int  # sent again after a failure: the receiver may hold them twice
    unsent: int  # still queued or unconfirmed when the trace ended


class Batch(NamedTuple):
    """Events and their JSON lines (Tracee's shape), side by side."""

    events: Sequence[Event]
    lines: Sequence[str]


class Delivery(NamedTuple):
    """What a receiver made of a batch: accepted + rejected == the batch's events."""

    accepted: int
    acknowledged: int
    rejected: int = 0


class SendFailed(Exception):
    """The batch may not have arrived; try it again, after `retry_after` s if the receiver
    said so."""

    def __init__(self, why: str, retry_after: float | None = None) -> None:
        super().__init__(why)
        self.retry_after = retry_after


class Connection(Protocol):
    """A wire format's link to its receiver. connect() and send() raise OSError or SendFailed
    on failure, within `timeout` seconds; close() is idempotent."""

    def connect(self, timeout: float) -> None: ...

    def send(self, batch: Batch, timeout: float) -> Delivery: ...

    def close(self) -> None: ...


class Backoff:
    """Exponential backoff with full jitter: each delay uniform in [d/2, d], d doubling up to
    a cap, so that a fleet's tracers do not reconnect in step."""

    def __init__(self, first: float = _BACKOFF_FIRST, cap: float = _BACKOFF_MAX) -> None:
        self.first, self.cap, self._next = first, cap, first

    def delay(self) -> float:
        delay = self._next
        self._next = min(self.cap, delay * 2)
        return random.uniform(delay / 2, delay)

    def reset(self) -> None:
        self._next = self.first


class Exporter:
    """A destination's queue and sender thread: send(events) from the reading thread, close()
    at the end, stats() at any time."""

    def __init__(
        self,
        name: str,
        connection: Connection,
        *,
        max_events: int = MAX_EVENTS,
        max_bytes: int = MAX_BYTES,
        max_batch: int = MAX_BATCH,
        flush_seconds: float = FLUSH_SECONDS,
        io_timeout: float = 5.0,
    ) -> None:
        self.name = name
        self.connection = connection
        self.max_events, self.max_bytes, self.max_batch = max_events, max_bytes, max_batch
        self.flush_seconds = flush_seconds
        self.io_timeout = io_timeout  # for each connect, write and response
        self._queue: collections.deque[Batch] = collections.deque()
        self._queued_events = self._queued_bytes = 0
        self._changed = threading.Condition()
        self._deadline: float | None = None  # set by close(): the sender's last moment
        self._in_hand = 0  # events of the batch the sender holds
        self._counts = dict.fromkeys(("offered", "sent", "acknowledged", "dropped", "retried"), 0)
        self._unsent = 0
        self._final = False  # close() has counted what is left: a late delivery counts nothing
        self._thread = threading.Thread(target=self._sender, name=f"rawtrace {name}", daemon=True)
        self._thread.start()

    # -- the reading thread ------------------------------------------------------------------

    def send(self, events: Sequence[Event]) -> None:
        """Queue what fits; count the rest as dropped. Never blocks on the network."""
        if not events:
            return
        lines = [json_line(event) for event in events]
        size = sum(map(len, lines))
        with self._changed:
            self._counts["offered"] += len(events)
            if self._deadline is not None:
                self._unsent += len(events)  # closing: too late for the queue
                return
            room = self.max_events - self._queued_events
            if room < len(events) or self._queued_bytes + size > self.max_bytes:
                room = self._room(lines, room)
                self._counts["dropped"] += len(events) - room
                if room == 0:
                    return
                events, lines = events[:room], lines[:room]
                size = sum(map(len, lines))
            self._queue.append(Batch(events, lines))
            self._queued_events += len(events)
            self._queued_bytes += size
            self._changed.notify()

    def _room(self, lines: list[str], room: int) -> int:
        """How many of lines fit in the queue (only computed when they do not all fit)."""
        left, fits = self.max_bytes - self._queued_bytes, 0
        for line in lines[: max(room, 0)]:
            left -= len(line)
            if left < 0:
                break
            fits += 1
        return fits

    def start_closing(self) -> None:
        """Take no more events; the sender has flush_seconds from now to empty the queue."""
        with self._changed:
            if self._deadline is None:
                self._deadline = time.monotonic() + self.flush_seconds
                self._changed.notify()

    def close(self) -> None:
        """Let the sender empty the queue for up to flush_seconds, then stop it and count what
        is left as unsent. Idempotent."""
        self.start_closing()
        # the sender's socket operations end by the deadline; the margin covers a close()
        self._thread.join(self.flush_seconds + 1.0)
        with self._changed:
            self._final = True
            if self._queue or self._in_hand:
                self._unsent += self._queued_events + self._in_hand
                self._queue.clear()
                self._queued_events = self._queued_bytes = self._in_hand = 0
        self.connection.close()

    def stats(self) -> ExportStats:
        with self._changed:
            c = self._counts
            return ExportStats(
                self.name,
                c["offered"],
                c["sent"],
                c["acknowledged"],
                c["dropped"],
                c["retried"],
                self._unsent,
            )

    # -- the sender thread -------------------------------------------------------------------

    def _take(self) -> Batch | None:
        """The next batch (at most max_batch events), waiting for one; None once closing and
        the queue is empty or the deadline passed."""
        with self._changed:
            while not self._queue:
                if self._deadline is not None:
                    return None
                self._changed.wait()
            if self._deadline is not None and time.monotonic() >= self._deadline:
                return None
            batch = self._queue.popleft()
            if len(batch.events) > self.max_batch:
                rest = Batch(batch.events[self.max_batch :], batch.lines[self.max_batch :])
                self._queue.appendleft(rest)
                batch = Batch(batch.events[: self.max_batch], batch.lines[: self.max_batch])
            self._queued_events -= len(batch.events)
            self._queued_bytes -= sum(map(len, batch.lines))
            self._in_hand = len(batch.events)
            return batch

    def _time_left(self) -> float:
        """Seconds a socket operation may take: io_timeout, or less near the deadline."""
        deadline = self._deadline
        if deadline is None:
            return self.io_timeout
        return max(0.0, min(self.io_timeout, deadline - time.monotonic()))

    def _sleep(self, seconds: float) -> None:
        """Wait for a retry, cut short by close()'s deadline."""
        end = time.monotonic() + seconds
        with self._changed:
            while True:
                now = time.monotonic()
                deadline = self._deadline if self._deadline is not None else end
                left = min(end, deadline) - now
                if left <= 0:
                    return
                self._changed.wait(left)

    def _expired(self) -> bool:
        return self._deadline is not None and time.monotonic() >= self._deadline

    def _sender(self) -> None:
        backoff = Backoff()
        connected = False
        while (batch := self._take()) is not None:
            attempted = False  # some of it may have reached the receiver
            while not self._expired():
                try:
                    if not connected:
                        self.connection.connect(self._time_left())
                        connected = True
                        log.info("rawtrace: %s: connected", self.name)
                    if attempted:
                        self._count("retried", len(batch.events))
                    attempted = True
                    delivery = self.connection.send(batch, self._time_left())
                except (OSError, SendFailed) as exc:
                    self.connection.close()
                    connected = False
                    retry_after = exc.retry_after if isinstance(exc, SendFailed) else None
                    delay = backoff.delay() if retry_after is None else retry_after
                    log.warning("rawtrace: %s: %s; retrying in %.1f s", self.name, exc, delay)
                    self._sleep(delay)
                    continue
                backoff.reset()
                self._delivered(delivery)
                break
            else:
                return  # the deadline passed: close() counts the batch in hand as unsent

    def _count(self, key: str, n: int) -> None:
        with self._changed:
            self._counts[key] += n

    def _delivered(self, delivery: Delivery) -> None:
        with self._changed:
            if self._final:
                return
            self._counts["sent"] += delivery.accepted
            self._counts["acknowledged"] += delivery.acknowledged
            self._counts["dropped"] += delivery.rejected
            self._in_hand = 0
        rejected = delivery.rejected
        if rejected:
            log.warning("rawtrace: %s: the receiver rejected %d events", self.name, rejected)
