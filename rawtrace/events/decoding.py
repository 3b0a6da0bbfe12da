"""Records from the rings, turned into Event objects by the catalogue's declarations.

A batch is decoded with one struct.iter_unpack over its buffer when its records all have the same
size (the perf payload is the record padded to 8 bytes with its 4-byte size field; the ring
buffer's is the record itself): no per-field work in Python, a tuple per record. What follows
the fixed record, an event's tail and any padding, comes as one bytes field for the event's
decode_args. A batch of several sizes (events with tails of different lengths) is split into one
run per size, each decoded the same way.

An event's container id comes from its cgroup id: the cgroup's path names the container
(kernel_compat.system.cgroups), found by a walk of the cgroup v2 hierarchy when an id is new to
the decoder (a container started during the trace), at most once per batch.
"""

from __future__ import annotations

import contextlib
import struct
import time
from collections.abc import Iterable
from typing import Any, Callable

from bpf_bytecode.programs.record import SYSCALL_RECORD
from kernel_compat import FeatureMissing, KernelFactError
from kernel_compat.system.cgroups import container_ids
from rawtrace.events.catalogue import BY_ID
from rawtrace.events.declaring import EventSpec, SyscallFeed
from rawtrace.events.event import Arg, ArgValue, Event, host_name, kernel_string
from rawtrace.events.stand_ins import stand_in_records
from rawtrace.transports.batch import Batch

_NAMES_KEPT = 4096  # distinct comms remembered; a trace sees few, a hostile one may see many
_CGROUPS_KEPT = 4096  # cgroup ids whose container id (or none) is remembered
_U32 = 0xFFFFFFFF

Record = tuple[Any, ...]  # SYSCALL_RECORD's fields, then the bytes after them


class Decoder:
    """Decodes records of one trace's `events` (by default the catalogue's). Kernel times
    (CLOCK_MONOTONIC) become wall-clock times."""

    def __init__(
        self, task_context: bool = True, events: Iterable[EventSpec] = BY_ID.values()
    ) -> None:
        # Without the task walk (no BTF) the record's parent and namespace fields are 0, and
        # processId/threadId fall back to the host's ids.
        self.task_context = task_context
        self.monotonic_to_wall = time.time_ns() - time.monotonic_ns()
        self.undecodable = 0
        self._names: dict[bytes, str] = {}  # comm as the kernel sent it -> its text
        self._unpackers: dict[int, struct.Struct] = {}  # record stride -> its layout
        # Without BTF the events that a tracepoint feeds come from their syscall feed instead
        # (see EventSpec.tracepoint), and decode as that feed's records.
        self._feeds = {
            spec.event_id: _feed(spec, task_context) for spec in events if spec.in_kernel
        }
        # records of clone calls standing in for a syscall the architecture lacks
        for record_id, (spec, syscall) in stand_in_records().items():
            self._feeds[record_id] = (spec, spec.decode_args, syscall)
        self._containers: dict[int, str] = {}  # cgroup id -> container id, "" for none
        self._walked = False  # the cgroups were walked for this batch

    def decode(self, batch: Batch) -> list[Event]:
        """The events in a batch: in its order when its records have one size, else ordered by
        timestamp. Records that are not an event are counted in `undecodable`."""
        sizes = batch.sizes
        if not sizes:
            return []
        self._walked = False
        if min(sizes) == max(sizes):
            return self._run(sizes[0], len(sizes), batch.data)
        runs: dict[int, list[memoryview]] = {}
        view, offset = memoryview(batch.data), 0
        for size in sizes:
            runs.setdefault(size, []).append(view[offset : offset + size])
            offset += size
        events = []
        for size, payloads in runs.items():
            events += self._run(size, len(payloads), b"".join(payloads))
        events.sort(key=_timestamp)
        return events

    def _run(self, stride: int, count: int, data: bytes) -> list[Event]:
        """The events of `count` records of `stride` bytes each, back to back in data."""
        if stride < SYSCALL_RECORD.size:
            self.undecodable += count
            return []
        unpacker = self._unpackers.get(stride)
        if unpacker is None:
            tail = stride - SYSCALL_RECORD.size
            unpacker = self._unpackers[stride] = struct.Struct(f"{SYSCALL_RECORD.format}{tail}s")
        return self._events(unpacker.iter_unpack(data))

    def _events(self, records: Iterable[Record]) -> list[Event]:
        to_wall = self.monotonic_to_wall
        names = self._names
        containers = self._containers
        feeds = self._feeds
        task_context = self.task_context
        host = host_name()
        events = []
        for (
            ts,
            start,
            pid_tgid,
            uid_gid,
            cgroup_id,
            comm,
            event_id,
            cpu,
            host_ppid,
            ns_pid,
            ns_tid,
            ns_ppid,
            mnt_ns,
            pid_ns,
            ret,
            tail,
        ) in records:
            feed = feeds.get(event_id)
            if feed is None:
                self.undecodable += 1
                continue
            spec, decode_args, syscall = feed
            if len(tail) < spec.tail_size:  # not what this event's programs send
                self.undecodable += 1
                continue
            name = names.get(comm)
            if name is None:
                if len(names) >= _NAMES_KEPT:
                    names.clear()
                name = names[comm] = kernel_string(comm)
            tgid, tid = pid_tgid >> 32, pid_tgid & _U32
            if not task_context:
                ns_pid, ns_tid = tgid, tid
            values = decode_args(ret, tail)
            container = containers.get(cgroup_id)
            if container is None:
                container = self._container_of(cgroup_id)
            # positional, in Event's field order: keywords would cost three times as much
            events.append(
                Event(
                    ts + to_wall,  # timestamp
                    start + to_wall if start else 0,  # call_start
                    cpu,  # processor_id
                    ns_pid,  # process_id
                    ns_tid,  # thread_id
                    tgid,  # host_process_id
                    tid,  # host_thread_id
                    uid_gid & _U32,  # user_id
                    name,  # process_name
                    cgroup_id,
                    spec.event_id,  # the record's, without a stand-in's feeding call
                    spec.name,  # event_name
                    syscall,
                    ret,  # return_value
                    tuple([Arg(a.name, a.type, v) for a, v in zip(spec.args, values)]),
                    ns_ppid,  # parent_process_id
                    host_ppid,  # host_parent_process_id
                    mnt_ns,  # mount_namespace
                    pid_ns,  # pid_namespace
                    host,  # host_name
                    container,  # container_id
                )
            )
        return events

    def _container_of(self, cgroup_id: int) -> str:
        """The container id of a cgroup new to the decoder, "" if it is in none."""
        if self._walked:  # once a batch: a later batch looks again
            return ""
        self._walked = True
        if len(self._containers) >= _CGROUPS_KEPT:
            self._containers.clear()
        with contextlib.suppress(FeatureMissing, KernelFactError):  # no cgroup v2: no ids
            self._containers.update(container_ids())
        # an id the walk did not find is in no container, or its cgroup is gone already
        return self._containers.setdefault(cgroup_id, "")


_Feed = tuple[EventSpec, Callable[[int, bytes], tuple[ArgValue, ...]], str]


def _feed(spec: EventSpec, task_context: bool) -> _Feed:
    """How an event's records decode: its args, and the syscall they come from ("" for a
    tracepoint's)."""
    if spec.tracepoint is not None and (task_context or spec.feed is None):
        return spec, spec.tracepoint_decode_args, ""
    if not isinstance(spec.feed, SyscallFeed):  # a kernel function's entry
        return spec, spec.decode_args, ""
    return spec, spec.decode_args, spec.feed.syscall


def _timestamp(event: Event) -> int:
    return event.timestamp
