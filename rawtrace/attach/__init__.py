"""Attach families: the ways a syscall's programs can be hooked into the kernel.

Each family is one module with a class implementing SyscallFamily. A family knows its program
type, how its programs read their context, and how to attach them; the tracer supplies the rest
(maps, filters, output) through a SyscallPrograms loader, so no family repeats program logic.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Sequence
from contextlib import ExitStack
from typing import Callable, Protocol

from bpf_bytecode import Item
from bpf_bytecode.programs.capture import SyscallArgs
from rawtrace.kernel.bpf import AttachType, ProgType
from rawtrace.kernel.loading import OwnedPrograms, Program


class Detachable(Protocol):
    """An attachment; closing it detaches."""

    def close(self) -> None: ...


class Link(Detachable, Protocol):
    """An attachment of a syscall's programs, which can tell the calls it missed."""

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


def detach_all(links: Sequence[Detachable]) -> None:
    """Close links together, each in its own thread, then raise the first failure.

    Closing a tracepoint's perf event waits out an RCU grace period (perf_trace_event_unreg
    calls tracepoint_synchronize_unregister), 20 to 50 ms each; closed one after another, the
    dozen links of a vfork trace held its end for a second or more. Waits made at once share
    their grace periods.
    """
    failures: list[BaseException] = []

    def close(link: Detachable) -> None:
        try:
            link.close()
        except BaseException as exc:  # raised in the caller's thread below
            failures.append(exc)

    threads = [threading.Thread(target=close, args=(link,)) for link in links]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if failures:
        raise failures[0]


class Attached:
    """The links of one syscall's programs (an ExitStack of their close callbacks)."""

    def __init__(self, links: ExitStack, missed: Callable[[], int | None] = lambda: 0) -> None:
        self._links = links
        self._missed = missed

    def close(self) -> None:
        self._links.close()

    def missed(self) -> int | None:
        return self._missed()


class SyscallPrograms:
    """Loads the enter and exit programs of one syscall for whichever family asks. The family
    supplies its context code: `match` picks the syscall out, `args` says where its arguments
    are, `load_ret` reads the return value; a subclass says what the programs do with them
    (enter_code, exit_code). The programs are named `<prefix>_enter` and `<prefix>_exit` and
    owned by `resources`. A call that never returns (`at_entry`: exit_group) has no exit
    program."""

    def __init__(self, prefix: str, resources: ExitStack, *, at_entry: bool) -> None:
        self.programs = OwnedPrograms(prefix, resources)
        self.at_entry = at_entry

    def enter_code(self, match: Sequence[Item], args: SyscallArgs) -> Sequence[Item]:
        raise NotImplementedError

    def exit_code(self, load_ret: Sequence[Item]) -> Sequence[Item]:
        raise NotImplementedError

    def enter(
        self,
        prog_type: ProgType,
        match: Sequence[Item] = (),
        *,
        args: SyscallArgs,
        expected_attach_type: AttachType = AttachType.NONE,
        attach_btf_id: int = 0,
    ) -> Program:
        code = self.enter_code(match, args)
        return self.programs.load("enter", prog_type, code, expected_attach_type, attach_btf_id)

    def exit(
        self,
        prog_type: ProgType,
        load_ret: Sequence[Item],
        *,
        expected_attach_type: AttachType = AttachType.NONE,
        attach_btf_id: int = 0,
    ) -> Program:
        code = self.exit_code(load_ret)
        return self.programs.load("exit", prog_type, code, expected_attach_type, attach_btf_id)


class SyscallFamily(Protocol):
    name: str

    def attach_syscall(self, syscall: str, programs: SyscallPrograms) -> Link:
        """Load (through `programs`) and attach the enter and exit programs of `syscall`.

        On failure it closes whatever it attached and raises.
        """
        ...
