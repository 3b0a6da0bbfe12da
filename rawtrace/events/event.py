"""The typed, immutable event objects a trace yields, and their Tracee-shaped dict form.

They are named tuples: a trace makes tens of thousands a second, and a tuple is built in one
step where a frozen dataclass sets each of its 21 fields through object.__setattr__ (ten times
the cost, measured).
"""

from __future__ import annotations

import functools
import os
from typing import Any, NamedTuple, Union

ArgValue = Union[int, str, bytes, bool, tuple[str, ...], None]


def kernel_string(raw: bytes) -> str:
    """A NUL-terminated kernel string, decoded as os.fsdecode does: bytes that are not UTF-8
    become lone surrogates (U+DC80-U+DCFF), so that os.fsencode gives the kernel's bytes back and
    no byte can pass for text that spells its escape."""
    return raw.split(b"\0", 1)[0].decode("utf-8", "surrogateescape")


@functools.lru_cache(maxsize=1)
def host_name() -> str:
    """The host's name (its UTS nodename), the hostName of every event: read once, as a
    renamed host keeps its old name in a running trace's events."""
    return os.uname().nodename


class Arg(NamedTuple):
    name: str
    type: str
    value: ArgValue


class Event(NamedTuple):
    """One traced event. Times are wall-clock nanoseconds since the epoch.

    Fields that rawtrace does not know yet keep a neutral value (0 or ""): parent pids,
    namespaces and containerId. README lists them. hostName is the host's nodename (Tracee
    takes the task's UTS namespace's, which differs inside containers).
    """

    timestamp: int
    call_start: int  # when the call was entered; 0 when the entry was not seen
    processor_id: int
    process_id: int
    thread_id: int
    host_process_id: int
    host_thread_id: int
    user_id: int
    process_name: str
    cgroup_id: int
    event_id: int
    event_name: str
    syscall: str
    return_value: int
    args: tuple[Arg, ...]
    parent_process_id: int = 0
    host_parent_process_id: int = 0
    mount_namespace: int = 0
    pid_namespace: int = 0
    host_name: str = ""
    container_id: str = ""

    def arg(self, name: str) -> ArgValue:
        for arg in self.args:
            if arg.name == name:
                return arg.value
        raise KeyError(f"{self.event_name} has no argument {name!r}")

    def to_dict(self) -> dict[str, Any]:
        """The event in Tracee v0.24's JSON shape (types/trace.Event), field for field, plus
        rawtrace's callStartTime."""
        return {
            "timestamp": self.timestamp,
            "threadStartTime": 0,
            "processorId": self.processor_id,
            "processId": self.process_id,
            "cgroupId": self.cgroup_id,
            "threadId": self.thread_id,
            "parentProcessId": self.parent_process_id,
            "hostProcessId": self.host_process_id,
            "hostThreadId": self.host_thread_id,
            "hostParentProcessId": self.host_parent_process_id,
            "userId": self.user_id,
            "mountNamespace": self.mount_namespace,
            "pidNamespace": self.pid_namespace,
            "processName": self.process_name,
            "executable": {"path": ""},
            "hostName": self.host_name,
            "containerId": self.container_id,
            "container": {},
            "kubernetes": {},
            "eventId": str(self.event_id),
            "eventName": self.event_name,
            "argsNum": len(self.args),
            "returnValue": self.return_value,
            "syscall": self.syscall,
            "stackAddresses": None,
            "contextFlags": {"containerStarted": False, "isCompat": False},
            "threadEntityId": 0,
            "processEntityId": 0,
            "parentEntityId": 0,
            "args": [{"name": a.name, "type": a.type, "value": a.value} for a in self.args],
            "callStartTime": self.call_start,
        }
