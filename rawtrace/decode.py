"""Records from the rings, turned into Event objects by the catalogue's declarations."""

from __future__ import annotations

import time

from bpf_bytecode.programs.record import SYSCALL_RECORD
from rawtrace.event import Arg, Event
from rawtrace.events import BY_ID


def kernel_string(raw: bytes) -> str:
    """A NUL-terminated kernel string; bytes that are not UTF-8 become \\xNN escapes."""
    return raw.split(b"\0", 1)[0].decode("utf-8", "backslashreplace")


class Decoder:
    """Decodes records of one trace. Kernel times (CLOCK_MONOTONIC) become wall-clock times."""

    def __init__(self) -> None:
        self.monotonic_to_wall = time.time_ns() - time.monotonic_ns()
        self.undecodable = 0

    def decode(self, payload: bytes) -> Event | None:
        """The event in payload, or None (counted in `undecodable`) if it is not one."""
        if len(payload) < SYSCALL_RECORD.size:
            self.undecodable += 1
            return None
        ts, start, pid_tgid, uid_gid, cgroup_id, comm, event_id, cpu, ret = (
            SYSCALL_RECORD.unpack_from(payload)
        )
        spec = BY_ID.get(event_id)
        if spec is None:
            self.undecodable += 1
            return None
        values = spec.args_from_return(ret)
        return Event(
            timestamp=ts + self.monotonic_to_wall,
            call_start=start + self.monotonic_to_wall if start else 0,
            processor_id=cpu,
            process_id=pid_tgid >> 32,
            thread_id=pid_tgid & 0xFFFFFFFF,
            host_process_id=pid_tgid >> 32,
            host_thread_id=pid_tgid & 0xFFFFFFFF,
            user_id=uid_gid & 0xFFFFFFFF,
            process_name=kernel_string(comm),
            cgroup_id=cgroup_id,
            event_id=event_id,
            event_name=spec.name,
            syscall=spec.feed.syscall,
            return_value=ret,
            args=tuple(Arg(a.name, a.type, v) for a, v in zip(spec.args, values)),
        )
