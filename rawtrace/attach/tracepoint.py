"""Attach to a tracepoint (tracefs events/<category>/<name>) through a perf event; and the
syscall family built on the syscalls:sys_enter_* / sys_exit_* tracepoints.

A tracepoint program fires on every CPU from one perf event opened with pid=-1, cpu=0: the event
is a handle for the attachment, not a per-CPU counter. Opening one per CPU would run the program
once per CPU for every hit.
"""

from __future__ import annotations

from contextlib import ExitStack
from pathlib import Path

from bpf_bytecode.programs.capture import ArgsInContext
from bpf_bytecode.programs.syscall import ret_at
from kernel_compat import FeatureMissing, TracepointFormat, read_tracepoint_format
from kernel_compat.arch import exits_seen_as
from rawtrace.attach import Attached, Link, SyscallPrograms
from rawtrace.attach.perf_attach import PerfEventLink, attach_perf_event, open_probe_event
from rawtrace.errors import KernelFeatureMissing
from rawtrace.kernel.bpf import ProgType
from rawtrace.kernel.loading import Program
from rawtrace.kernel.perf_event import PERF_SAMPLE_RAW, PerfType, perf_event_attr


def attach_tracepoint(program: Program, tracefs: Path, category: str, name: str) -> PerfEventLink:
    tracepoint = read_tracepoint_format(tracefs, category, name)
    attr = perf_event_attr(
        PerfType.TRACEPOINT,
        tracepoint.id,
        sample_period=1,
        sample_type=PERF_SAMPLE_RAW,
        wakeup=1,
    )
    event = open_probe_event(attr, f"to attach to {category}:{name}")
    return attach_perf_event(event, program, f"tracepoint {category}:{name}")


class SyscallTracepoints:
    """syscalls:sys_enter_X and syscalls:sys_exit_X (CONFIG_FTRACE_SYSCALLS)."""

    name = "tracepoint"

    def __init__(self, tracefs: Path) -> None:
        self.tracefs = tracefs

    def attach_syscall(self, syscall: str, programs: SyscallPrograms) -> Link:
        enter_name, exit_name = f"sys_enter_{syscall}", f"sys_exit_{syscall}"
        hooks = []
        if not programs.at_entry:
            exit_format = self._format(exit_name)
            leave = programs.exit(ProgType.TRACEPOINT, ret_at(exit_format.field("ret").offset))
            hooks.append((leave, exit_name))
            # where a success is reported as another syscall's exit (execveat as execve), the
            # exit program goes there too: only a thread whose entry it noted passes it
            hooks += [(leave, f"sys_exit_{other}") for other in exits_seen_as(syscall)]
        args = _args(self._format(enter_name))
        hooks.append((programs.enter(ProgType.TRACEPOINT, args=args), enter_name))
        with ExitStack() as links:
            # Exit first: an entry seen without its exit would only leave a stale start time.
            for program, name in hooks:
                links.callback(attach_tracepoint(program, self.tracefs, "syscalls", name).close)
            return Attached(links.pop_all())

    def _format(self, name: str) -> TracepointFormat:
        try:
            return read_tracepoint_format(self.tracefs, "syscalls", name)
        except FeatureMissing as exc:
            raise KernelFeatureMissing(
                f"this kernel has no tracepoint syscalls:{name} ({exc})",
                "rawtrace needs a kernel built with CONFIG_FTRACE_SYSCALLS",
            ) from exc


def _args(enter: TracepointFormat) -> ArgsInContext:
    """A sys_enter_* tracepoint's arguments: its fields after the common ones and the number,
    in the syscall's order, each 8 bytes (the format says so whatever the C type)."""
    fields = sorted(enter.fields.values(), key=lambda field: field.offset)
    skipped = ("common_", "__syscall_nr")
    return ArgsInContext(tuple(f.offset for f in fields if not f.name.startswith(skipped)))
