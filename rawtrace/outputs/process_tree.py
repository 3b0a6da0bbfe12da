"""`rawtrace trace --summary`: the tree of processes a trace saw, built from its lifecycle events.

A ProcessTree is fed Event objects in the order a tracer yields them and keeps, for each process:
how it came to be (fork, vfork, clone or clone3, and whether its parent was held as by vfork),
what it exec'd, how it ended and how long it lived. The order events arrive in is not the order
a reader might expect: a vfork child execs and exits before its parent's vfork returns, so a
child's own events often come before the event that created it. The tree takes either order.

Processes are keyed by (pid namespace, pid): a parent's fork returns its child's pid in the
parent's namespace, and the child's own events carry the pid in its own, the same one unless the
child got a new namespace (then it is a root of its own). A pid that is reused within one trace
merges with its earlier holder.
"""

from __future__ import annotations

import signal
from collections.abc import Iterable
from dataclasses import dataclass, field

from rawtrace.events.event import ArgValue, Event
from rawtrace.outputs.formats import printable

# What the tree is built from; `rawtrace trace --summary` traces these besides the user's events.
SUMMARY_EVENTS = ("fork", "vfork", "clone", "clone3", "execve", "execveat", "exit")
_CREATORS = frozenset(("fork", "vfork", "clone", "clone3"))
_EXECS = frozenset(("execve", "execveat"))
# include/uapi/linux/sched.h
CLONE_VFORK = 0x4000  # the parent sleeps until the child execs or exits, as for vfork()
CLONE_THREAD = 0x10000  # a thread of the caller's process, not a process

_Key = tuple[int, int]  # pid namespace, pid


@dataclass(eq=False)
class Process:
    """One process of the tree; None where the trace did not show it."""

    pid: int  # in its own pid namespace
    comm: str  # the name in its latest event (or its creator's, if it showed none)
    created_by: str | None = None  # the creating event: fork, vfork, clone or clone3
    created_at: int | None = None  # ns since the epoch
    # vfork() and clone(CLONE_VFORK) hold the parent until the child has exec'd or exited
    held_parent: bool = False
    held_parent_ns: int | None = None  # for how long, where the event tells
    execs: list[str] = field(default_factory=list)  # paths of the successful execs, in order
    exit_code: int | None = None  # as its parent is told
    exit_signal: int | None = None  # the signal that ended it; None where not known
    exited_at: int | None = None
    parent: Process | None = None
    children: list[Process] = field(default_factory=list)

    @property
    def lifetime_ns(self) -> int | None:
        if self.created_at is None or self.exited_at is None:
            return None
        return max(0, self.exited_at - self.created_at)


class ProcessTree:
    """The processes that lifecycle events show, and who created whom. Roots are the processes
    whose creation was not seen: the traced command, or processes already running.

    >>> tree = ProcessTree()                    # doctest: +SKIP
    >>> tree.add_all(tracer)                    # doctest: +SKIP
    >>> print(tree.render())                    # doctest: +SKIP
    """

    def __init__(self) -> None:
        self._processes: dict[_Key, Process] = {}
        # clone3 children whose flags could not be read (clone3 events carry cl_args->flags,
        # read at entry; None where that failed): each may be a thread, so it becomes a
        # process only once it acts as one (an event of its own with its pid as process id).
        self._clone3_children: dict[_Key, tuple[Process, Event]] = {}

    def add_all(self, events: Iterable[Event]) -> None:
        for event in events:
            self.add(event)

    def add(self, event: Event) -> None:
        """Take one event; events that do not describe a lifecycle only name their process."""
        name = event.event_name
        if name in _CREATORS and event.return_value > 0:
            self._created(event)
        elif name in _EXECS and event.return_value == 0:
            self._acting(event).execs.append(str(event.arg("pathname")))
        elif name == "exit":
            process = self._acting(event)
            process.exit_code = _int(event.arg("exit_code"))
            signal_code = _int(event.arg("signal_code"))  # -1: not known (exit_group's entry)
            process.exit_signal = signal_code if signal_code != -1 else None
            process.exited_at = event.timestamp
            # its threads end with it: forget those of its clone3 children that never acted
            self._clone3_children = {
                key: pending
                for key, pending in self._clone3_children.items()
                if pending[0] is not process
            }
        else:
            self._acting(event)

    def roots(self) -> list[Process]:
        """The processes whose parent was not seen, in the order they showed up."""
        return [p for p in self._processes.values() if p.parent is None]

    def render(self) -> str:
        """The tree as indented lines, like pstree: `PID COMM: how, exec PATH, exit N, lived T`."""
        lines: list[str] = []
        for root in self.roots():
            lines.append(_describe(root))
            _render_children(root, "", lines)
        return "".join(line + "\n" for line in lines)

    def _acting(self, event: Event) -> Process:
        """The process that made `event`, made known now if it was not; its latest name."""
        key = (event.pid_namespace, event.process_id)
        process = self._processes.get(key)
        if process is None:
            process = self._processes[key] = Process(event.process_id, event.process_name)
            pending = self._clone3_children.pop(key, None)
            if pending is not None:
                _adopt(*pending, process)
        process.comm = event.process_name
        return process

    def _created(self, event: Event) -> None:
        parent = self._acting(event)
        known = _int(_optional_arg(event, "flags"))
        if known is not None and known & CLONE_THREAD:
            return  # a thread: its events are its process's
        key = (event.pid_namespace, event.return_value)
        child = self._processes.get(key)
        if child is None and event.event_name == "clone3" and known is None:
            self._clone3_children[key] = (parent, event)
            return
        if child is None:
            # fork copies the name: the child goes by its parent's until it execs
            child = self._processes[key] = Process(event.return_value, event.process_name)
        if child.parent is None and child is not parent:
            _adopt(parent, event, child)


def _adopt(parent: Process, event: Event, child: Process) -> None:
    """Make `child` the child that `event` (its parent's fork, vfork or clone) created."""
    child.parent = parent
    parent.children.append(child)
    child.created_by = event.event_name
    # The child exists from within the call, and may run (and end: always, for vfork) before
    # the parent's return is seen: the call's entry is its birth where it was seen.
    child.created_at = event.call_start or event.timestamp
    flags = _int(_optional_arg(event, "flags")) or 0
    # clone3's flags are behind a pointer: its `vfork` arg says whether it held the parent
    child.held_parent = (
        event.event_name == "vfork"
        or _optional_arg(event, "vfork") is True
        or (event.event_name == "clone" and bool(flags & CLONE_VFORK))
    )
    if child.held_parent:
        held = _int(_optional_arg(event, "hold_ns"))
        if held is None and event.call_start:
            held = event.timestamp - event.call_start  # the whole call, a little more
        child.held_parent_ns = held


def _render_children(process: Process, indent: str, lines: list[str]) -> None:
    children = sorted(process.children, key=lambda c: c.created_at or 0)
    for index, child in enumerate(children):
        last = index == len(children) - 1
        lines.append(f"{indent}{'└─' if last else '├─'}{_describe(child)}")
        _render_children(child, indent + ("  " if last else "│ "), lines)


def _describe(process: Process) -> str:
    parts = []
    if process.created_by is not None:
        how = process.created_by
        if process.held_parent and process.created_by != "vfork":
            how += "(CLONE_VFORK)"
        if process.held_parent_ns is not None:
            how += f" (held the parent {_duration(process.held_parent_ns)})"
        parts.append(how)
    parts += [f"exec {printable(path)}" for path in process.execs]
    if process.exit_signal:
        parts.append(f"killed by {_signal_name(process.exit_signal)}")
    elif process.exit_code is not None:
        parts.append(f"exit {process.exit_code}")
    else:
        parts.append("no exit seen")
    if process.lifetime_ns is not None:
        parts.append(f"lived {_duration(process.lifetime_ns)}")
    return f"{process.pid} {printable(process.comm)}: {', '.join(parts)}"


def _duration(ns: int) -> str:
    return f"{ns / 1e9:.3f} s" if ns >= 1_000_000_000 else f"{ns / 1e6:.3f} ms"


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"


def _optional_arg(event: Event, name: str) -> ArgValue:
    """An arg that not every version of an event carries: None where it has none."""
    try:
        return event.arg(name)
    except KeyError:
        return None


def _int(value: ArgValue) -> int | None:
    return value if isinstance(value, int) else None


def with_summary_events(names: Iterable[str]) -> list[str]:
    """`names`, then the events the tree needs that are not among them."""
    chosen = list(dict.fromkeys(names))
    return chosen + [name for name in SUMMARY_EVENTS if name not in chosen]
