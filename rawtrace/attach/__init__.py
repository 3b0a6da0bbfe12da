"""Attach families: the ways a syscall's programs can be hooked into the kernel.

Each family is one module with a class implementing SyscallFamily. A family knows its program
type, how its programs read their context, and how to attach them; the tracer supplies the rest
(maps, filters, output) through a SyscallPrograms factory, so no family repeats program logic.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from bpf_bytecode import Item
from rawtrace.bpf import AttachType, ProgType
from rawtrace.programs import Program


class Link(Protocol):
    """An attachment; closing it detaches."""

    def close(self) -> None: ...


class SyscallPrograms(Protocol):
    """Loads the enter and exit programs of one syscall event, given a family's context code."""

    def enter(
        self,
        prog_type: ProgType,
        match: Sequence[Item] = (),
        *,
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
