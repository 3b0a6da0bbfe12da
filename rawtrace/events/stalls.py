"""The stall alarm: a vfork (or CLONE_VFORK clone) whose child has held its parent for longer
than a threshold, reported while the parent still waits — the deadlock risk of vfork, seen
before the call returns, if it ever does.

Each check scans the holds map (vfork_watch); a hold is reported once. The event is declared in
the catalogue (VFORK_STALL) like the others.
"""

from __future__ import annotations

import time

from rawtrace.events.catalogue import BY_ID, VFORK_STALL
from rawtrace.events.event import Arg, Event, host_name, kernel_string
from rawtrace.events.vfork_watch import VforkWatch

_U32 = 0xFFFFFFFF


class StallAlarm:
    """`monotonic_to_wall` is the trace's decoder's: a hold's start then reads as the same wall
    time as its call's start in the event (a clock drifts from the other over a long trace)."""

    def __init__(self, watch: VforkWatch, threshold_ms: float, monotonic_to_wall: int) -> None:
        self.watch = watch
        self.threshold_ns = int(threshold_ms * 1_000_000)
        self.to_wall = monotonic_to_wall
        self._reported: set[tuple[int, int]] = set()  # (pid_tgid, start) of reported holds

    def check(self) -> list[Event]:
        """A vfork_stall event for each hold that passed the threshold since the last check."""
        now = time.monotonic_ns()  # the clock of bpf_ktime_get_ns
        held = {(parent.pid_tgid, parent.start): parent for parent in self.watch.held()}
        self._reported &= held.keys()  # forget holds that ended
        events = []
        for key, parent in held.items():
            if key in self._reported or now - parent.start < self.threshold_ns:
                continue
            self._reported.add(key)
            tgid, tid = parent.pid_tgid >> 32, parent.pid_tgid & _U32
            call = BY_ID[parent.call].name if parent.call in BY_ID else str(parent.call)
            values = (parent.child, now - parent.start, self.threshold_ns)
            args = tuple(Arg(a.name, a.type, v) for a, v in zip(VFORK_STALL.args, values))
            events.append(
                Event(
                    now + self.to_wall,
                    parent.start + self.to_wall,
                    0,
                    tgid,
                    tid,
                    tgid,
                    tid,
                    _uid(tgid),
                    _comm(tid),
                    0,
                    VFORK_STALL.event_id,
                    VFORK_STALL.name,
                    call,
                    0,
                    args,
                    host_name=host_name(),
                )
            )
        return events


def _comm(tid: int) -> str:
    try:
        with open(f"/proc/{tid}/comm", "rb") as f:
            return kernel_string(f.read().rstrip(b"\n"))
    except OSError:  # it ended since the scan
        return ""


def _uid(tgid: int) -> int:
    try:
        with open(f"/proc/{tgid}/status") as f:
            for line in f:
                if line.startswith("Uid:"):
                    return int(line.split()[1])
    except OSError:  # it ended since the scan
        pass
    return -1  # unknown, never guessed
