"""Attach families: the ways a syscall's programs can be hooked into the kernel.

Each family is one module with a class implementing SyscallFamily. A family knows its program
type, how its programs read their context, and how to attach them; the tracer supplies the rest
(maps, filters, output) through a SyscallPrograms factory, so no family repeats program logic.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from contextlib import ExitStack
from typing import Callable, Protocol

from bpf_bytecode import Item
from bpf_bytecode.programs.capture import SyscallArgs
from rawtrace.bpf import AttachType, ProgType
from rawtrace.programs import Program


class Link(Protocol):
    """An attachment; closing it detaches."""

    def close(self) -> None: ...

    def missed(self) -> int | None:
        """Probe hits that never ran the programs (a kretprobe out of instances, recursion), as
        the kernel counts them; 0 where nothing is dropped, None where the kernel does not say.
        """
        ...


def total_missed(counts: Iterable[int | None]) -> int | None:
    """The sum of several miss counts; None if any of them is unknown."""
    total = 0
    for count in counts:
        if count is None:
            return None
        total += count
    return total


class Attached:
    """The links of one syscall's programs (an ExitStack of their close callbacks)."""

    def __init__(self, links: ExitStack, missed: Callable[[], int | None] = lambda: 0) -> None:
        self._links = links
        self._missed = missed

    def close(self) -> None:
        self._links.close()

    def missed(self) -> int | None:
        return self._missed()


class SyscallPrograms(Protocol):
    """Loads the enter and exit programs of one syscall event, given a family's context code:
    `match` picks the syscall out, `args` says where its arguments are, `load_ret` reads the
    return value. An event sent at entry (`at_entry`: exit_group never returns) has no exit
    program."""

    at_entry: bool

    def enter(
        self,
        prog_type: ProgType,
        match: Sequence[Item] = (),
        *,
        args: SyscallArgs,
        expected_attach_type: AttachType = AttachType.NONE,
        attach_btf_id: int = 0,
    ) -> Program: ...

    def exit(
        self,
        prog_type: ProgType,
        load_ret: Sequence[Item],
        *,
        expected_attach_type: AttachType = AttachType.NONE,
        attach_btf_id: int = 0,
    ) -> Program: ...


class SyscallFamily(Protocol):
    name: str

    def attach_syscall(self, syscall: str, programs: SyscallPrograms) -> Link:
        """Load (through `programs`) and attach the enter and exit programs of `syscall`.

        On failure it closes whatever it attached and raises.
        """
        ...
