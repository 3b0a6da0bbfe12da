"""The event catalogue: one declaration per event, saying what it is called, its Tracee id, its
arguments and which programs feed it. Everything else (planning, attaching, decoding, output)
reads these declarations; adding an event means adding one here and its program builder."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Callable

from rawtrace.errors import RawtraceError
from rawtrace.event import ArgValue


@dataclass(frozen=True)
class ArgSpec:
    name: str
    type: str


@dataclass(frozen=True)
class SyscallFeed:
    """Fed by the syscall's enter and exit: the exit sends the record with the return value.

    `skip_child_return` drops returns of 0, which for fork-like calls are the child's own.
    """

    syscall: str
    skip_child_return: bool = False


@dataclass(frozen=True)
class EventSpec:
    name: str
    event_id: int  # Tracee's id; for syscalls it is the x86-64 syscall number
    args: tuple[ArgSpec, ...]
    feed: SyscallFeed
    args_from_return: Callable[[int], tuple[ArgValue, ...]]
    description: str


def _child_pid(ret: int) -> tuple[ArgValue, ...]:
    return (ret if ret > 0 else 0,)


VFORK = EventSpec(
    name="vfork",
    event_id=58,
    args=(ArgSpec("pid", "pid_t"),),
    feed=SyscallFeed("vfork", skip_child_return=True),
    args_from_return=_child_pid,
    description="vfork(): the parent's return, with the child's pid (0 on failure)",
)

CATALOGUE: Mapping[str, EventSpec] = {spec.name: spec for spec in (VFORK,)}
BY_ID: Mapping[int, EventSpec] = {spec.event_id: spec for spec in CATALOGUE.values()}


def lookup(names: str | list[str]) -> list[EventSpec]:
    """The specs for event names (a list, or one comma-separated string)."""
    wanted = names.split(",") if isinstance(names, str) else names
    specs = []
    for name in (n.strip() for n in wanted):
        if name not in CATALOGUE:
            known = ", ".join(sorted(CATALOGUE))
            raise RawtraceError(f"unknown event {name!r}", f"known events: {known}")
        specs.append(CATALOGUE[name])
    return specs
