"""The syscall family on kprobes defined through tracefs kprobe_events, for kernels without the
kprobe PMU (before 4.17) and wherever it is forced with --attach kprobe-legacy.

Each probe is a line written to kprobe_events ("p:kprobes/NAME SYMBOL", "r4096:kprobes/NAME
SYMBOL" for the return); it becomes a tracepoint kprobes:NAME that is attached like any other.
Unlike a PMU probe it outlives the process that made it, so its name carries our pid: a probe
whose process is gone is stale and removed at the next start.
"""

from __future__ import annotations

import errno
import itertools
import os
import re
import time
from contextlib import ExitStack
from pathlib import Path

from kernel_compat import FeatureMissing, KernelFactError
from kernel_compat.kprobes import read_kprobe_events, read_kprobe_profile
from rawtrace.attach import Attached, Link, SyscallPrograms
from rawtrace.attach.kprobe import attach_syscall_kprobes
from rawtrace.attach.requirements import require_kprobes
from rawtrace.attach.tracepoint import attach_tracepoint
from rawtrace.errors import KernelFeatureMissing
from rawtrace.kernel.loading import Program
from rawtrace.kernel.privileges import Refused, refusal

GROUP = "kprobes"  # the kernel's default group for kprobe_events
# KRETPROBE_MAXACTIVE_MAX (kernel/trace/trace_kprobe.c). Each vfork parent holds an instance
# while it waits for its child; the default, max(10, 2 * possible CPUs), runs out in a storm.
MAXACTIVE = 4096
_NAME = re.compile(r"rawtrace_([0-9]+)_")
_MAX_EVENT_NAME = 63  # MAX_EVENT_NAME_LEN (64) with its NUL
_numbers = itertools.count()
# bpf_link_put() may free a closed link from a workqueue, so the perf event that keeps the probe
# busy can outlive our close() by a moment: removal retries EBUSY this long.
_BUSY_RETRY_S = 2.0


class TracefsKprobe:
    """One probe in kprobe_events, owned: close() removes it."""

    def __init__(self, tracefs: Path, name: str) -> None:
        self.tracefs = tracefs
        self.name: str | None = name

    @classmethod
    def define(cls, tracefs: Path, symbol: str, is_return: bool) -> TracefsKprobe:
        name = f"rawtrace_{os.getpid()}_{next(_numbers)}_{symbol}"[:_MAX_EVENT_NAME]
        event = f"{GROUP}/{name} {symbol}"
        if not is_return:
            _write_kprobe_events(tracefs, f"p:{event}")
            return cls(tracefs, name)
        try:
            _write_kprobe_events(tracefs, f"r{MAXACTIVE}:{event}")
        except OSError as exc:
            if exc.errno != errno.EINVAL:
                raise
            # "r<maxactive>:" came in 4.12 ("tracing/kprobes: expose maxactive for kretprobe in
            # kprobe_events"); older kernels refuse it.
            _write_kprobe_events(tracefs, f"r:{event}")
        return cls(tracefs, name)

    def counts_missed(self) -> int:
        """How often the probe fired without running its handler (kprobe_profile)."""
        counts = read_kprobe_profile(self.tracefs).get(self.name or "")
        return counts.misses if counts is not None else 0

    def close(self) -> None:
        name, self.name = self.name, None
        if name is not None:
            remove_kprobe(self.tracefs, name)


def remove_kprobe(tracefs: Path, name: str) -> None:
    deadline = time.monotonic() + _BUSY_RETRY_S
    while True:
        try:
            _write_kprobe_events(tracefs, f"-:{GROUP}/{name}")
            return
        except OSError as exc:
            if exc.errno == errno.ENOENT:
                return  # someone (a stale-probe sweep of another tracer) removed it already
            if exc.errno != errno.EBUSY or time.monotonic() > deadline:
                raise
        time.sleep(0.01)


def remove_stale_kprobes(tracefs: Path) -> list[str]:
    """Remove the probes of rawtrace processes that are gone; return their names."""
    removed = []
    for probe in read_kprobe_events(tracefs):
        match = _NAME.match(probe.name)
        if probe.group != GROUP or match is None or Path(f"/proc/{match.group(1)}").exists():
            continue
        remove_kprobe(tracefs, probe.name)
        removed.append(probe.name)
    return removed


def _write_kprobe_events(tracefs: Path, line: str) -> None:
    # os.open with O_APPEND: open(path, "a") also seeks, which some kernels answer with EINVAL;
    # without O_APPEND the write would replace every probe (O_TRUNC is implied).
    fd = os.open(tracefs / "kprobe_events", os.O_WRONLY | os.O_APPEND | os.O_CLOEXEC)
    try:
        os.write(fd, line.encode() + b"\n")
    finally:
        os.close(fd)


class LegacyKprobes:
    """kprobes and kretprobes from tracefs kprobe_events, attached as tracepoints."""

    name = "kprobe-legacy"

    def __init__(self, tracefs: Path) -> None:
        self.tracefs = tracefs

    @classmethod
    def create(cls, tracefs: Path) -> LegacyKprobes:
        require_kprobes()
        try:
            remove_stale_kprobes(tracefs)
        except FeatureMissing as exc:
            raise KernelFeatureMissing(
                f"kprobe events are not available: {exc}", "use --attach auto"
            ) from exc
        except KernelFactError as exc:
            raise KernelFeatureMissing(f"cannot use kprobe_events: {exc}") from exc
        return cls(tracefs)

    def attach_syscall(self, syscall: str, programs: SyscallPrograms) -> Link:
        probes: list[TracefsKprobe] = []

        def attach(program: Program, symbol: str, is_return: bool) -> Attached:
            with ExitStack() as stack:
                probe = self._define(symbol, is_return)
                stack.callback(probe.close)
                link = attach_tracepoint(program, self.tracefs, GROUP, probe.name or "")
                stack.callback(link.close)  # closed before the probe, which it keeps busy
                probes.append(probe)
                return Attached(stack.pop_all())

        stack, _ = attach_syscall_kprobes(syscall, programs, attach)
        return Attached(stack, lambda: sum(probe.counts_missed() for probe in probes))

    def _define(self, symbol: str, is_return: bool) -> TracefsKprobe:
        kind = "kretprobe" if is_return else "kprobe"
        try:
            return TracefsKprobe.define(self.tracefs, symbol, is_return)
        except PermissionError as exc:
            raise refusal(
                f"a {kind} in {self.tracefs}/kprobe_events", exc, Refused.TRACEFS
            ) from exc
        except OSError as exc:
            raise KernelFeatureMissing(
                f"the kernel refused a {kind} on {symbol} in kprobe_events: {exc.strerror}"
                f" (errno {exc.errno}); see {self.tracefs}/error_log",
            ) from exc
