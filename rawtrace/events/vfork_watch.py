"""Following vfork holds while a trace runs: the maps and the programs of
bpf_bytecode/programs/vfork.py, loaded and attached, and the holds still waiting.

The releases are watched at execve, execveat, exit_group and exit through the trace's attach
family (it knows how each reaches its syscalls); the fork and signal hooks are sched and signal
tracepoints, present wherever tracefs is. A successful exec's path comes from the kernel's copy
(sched_prepare_exec, or before 6.10 sched_process_exec), which the entry may fail to read.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

from bpf_bytecode import Item
from bpf_bytecode.programs.capture import SyscallArgs
from bpf_bytecode.programs.vfork import (
    HOLD,
    RELEASE,
    Cause,
    VforkMaps,
    exec_path_from_kernel,
    exec_returned,
    note_child,
    note_signal,
    release_at_exec,
    release_at_exit,
    release_at_signal,
)
from kernel_compat import FeatureMissing, TracepointFormat, read_tracepoint_format
from rawtrace.attach import Detachable, Link, SyscallFamily, SyscallPrograms
from rawtrace.attach.tracepoint import attach_tracepoint
from rawtrace.kernel.bpf import MapType, ProgType
from rawtrace.kernel.loading import OwnedPrograms
from rawtrace.kernel.maps import Map

HOLDS_ENTRIES = 4096  # parents held at once
_EXEC_PATH_ARG = {"execve": 0, "execveat": 1}
_EXEC_CAUSE = {"execve": Cause.EXECVE, "execveat": Cause.EXECVEAT}


@dataclass(frozen=True)
class HeldParent:
    """A parent still suspended in a holding call."""

    pid_tgid: int
    start: int  # when the call was entered, CLOCK_MONOTONIC nanoseconds
    child: int  # the child's tid; 0 if its creation was not seen yet
    call: int  # the event id of the call: 58 vfork, 56 clone, 435 clone3


class VforkWatch:
    """The holds and children maps, owned by `resources`."""

    def __init__(self, resources: ExitStack) -> None:
        self._programs = OwnedPrograms("vfork", resources)
        # LRU: an entry whose end was never seen (a parent killed in the call) ages out
        self.holds = resources.enter_context(
            Map.create(
                MapType.LRU_HASH,
                key_size=8,
                value_size=HOLD.size,
                max_entries=HOLDS_ENTRIES,
                name="vfork_holds",
            )
        )
        self.children = resources.enter_context(
            Map.create(
                MapType.LRU_HASH,
                key_size=4,
                value_size=RELEASE.size,
                max_entries=HOLDS_ENTRIES,
                name="vfork_children",
            )
        )
        self.maps = VforkMaps(self.holds.fileno(), self.children.fileno())

    def attach_tracepoints(self, tracefs: Path) -> list[Detachable]:
        """The fork and signal hooks; on failure, what was attached is detached."""
        fork = read_tracepoint_format(tracefs, "sched", "sched_process_fork")
        sent = read_tracepoint_format(tracefs, "signal", "signal_generate")
        acted = read_tracepoint_format(tracefs, "signal", "signal_deliver")
        exec_name, exec_format = _exec_tracepoint(tracefs)
        hooks = (
            (
                "sched",
                exec_name,
                exec_path_from_kernel(self.maps, exec_format.field("filename").offset),
            ),
            ("sched", "sched_process_fork", note_child(self.maps, fork.field("child_pid").offset)),
            (
                "signal",
                "signal_generate",
                note_signal(
                    self.maps,
                    sent.field("sig").offset,
                    sent.field("pid").offset,
                    sent.field("result").offset,
                ),
            ),
            (
                "signal",
                "signal_deliver",
                release_at_signal(
                    self.maps, acted.field("sig").offset, acted.field("sa_handler").offset
                ),
            ),
        )
        attached: list[Detachable] = []
        with ExitStack() as links:
            for category, name, code in hooks:
                program = self._programs.load(name, ProgType.TRACEPOINT, code)
                attached.append(attach_tracepoint(program, tracefs, category, name))
                links.callback(attached[-1].close)
            links.pop_all()
        return attached

    def attach_releases(self, family: SyscallFamily, programs: ExitStack) -> list[Link]:
        """The exec and exit hooks, through `family`, their programs owned by `programs`; on
        failure, what was attached is detached."""
        attached: list[Link] = []
        with ExitStack() as links:
            for syscall in ("execve", "execveat", "exit_group", "exit"):
                watchers = _ReleasePrograms(self.maps, syscall, programs)
                attached.append(family.attach_syscall(syscall, watchers))
                links.callback(attached[-1].close)
            links.pop_all()
        return attached

    def held(self) -> Iterator[HeldParent]:
        """The parents held now."""
        for key, value in self.holds.items():
            start, child, call = HOLD.unpack(value)
            yield HeldParent(int.from_bytes(key, "little"), start, child, call)


def _exec_tracepoint(tracefs: Path) -> tuple[str, TracepointFormat]:
    """sched_prepare_exec (6.10), which fires before the exec wakes the parent; else
    sched_process_exec, which may fire after the parent has returned."""
    try:
        return "sched_prepare_exec", read_tracepoint_format(tracefs, "sched", "sched_prepare_exec")
    except FeatureMissing:
        return "sched_process_exec", read_tracepoint_format(tracefs, "sched", "sched_process_exec")


class _ReleasePrograms(SyscallPrograms):
    """The programs a child's release is noted by, for one syscall."""

    def __init__(self, maps: VforkMaps, syscall: str, resources: ExitStack) -> None:
        # exit and exit_group never return
        super().__init__(f"vfork_{syscall}", resources, at_entry=syscall not in _EXEC_PATH_ARG)
        self.maps = maps
        self.syscall = syscall

    def enter_code(self, match: Sequence[Item], args: SyscallArgs) -> Sequence[Item]:
        if self.at_entry:
            return release_at_exit(self.maps, match, args)
        path_arg = _EXEC_PATH_ARG[self.syscall]
        return release_at_exec(self.maps, match, args, path_arg, _EXEC_CAUSE[self.syscall])

    def exit_code(self, load_ret: Sequence[Item]) -> Sequence[Item]:
        return exec_returned(self.maps, load_ret)
