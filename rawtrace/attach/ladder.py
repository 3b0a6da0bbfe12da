"""Which attach family a trace uses: the ladder, read top to bottom, and why each rung failed.

    kprobe           perf kprobe PMU (4.17): probes private to their fds
    kprobe-legacy    tracefs kprobe_events: kernels without the PMU
    tracepoint       syscalls:sys_enter_X/sys_exit_X (CONFIG_FTRACE_SYSCALLS)
    raw_tracepoint   sys_enter/sys_exit for every syscall, filtered by number (4.17)
    tp_btf           the same as BTF-typed tracepoints (5.5, with the kernel's BTF)

A rung fails by its pre-check (a missing build option or PMU: the family's constructor) or when
attaching; auto mode then records why and tries the next. A forced family that fails raises.
Auto mode also passes over a family that would work but could lose events without counting
them (its `unsafe_in_auto` says why); forced, it is used as asked.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from rawtrace.attach import SyscallFamily
from rawtrace.attach.kprobe import KprobePmu
from rawtrace.attach.kprobe_legacy import LegacyKprobes
from rawtrace.attach.raw_tracepoint import RawSyscallTracepoints
from rawtrace.attach.tp_btf import BtfSyscallTracepoints
from rawtrace.attach.tracepoint import SyscallTracepoints
from rawtrace.errors import (
    KernelFeatureMissing,
    PermissionMissing,
    RawtraceError,
    VerifierError,
    reason,
)
from rawtrace.kernel.fd_limit import out_of_fds

AUTO = "auto"


def _always_safe() -> str | None:
    return None


@dataclass(frozen=True)
class Rung:
    name: str
    make: Callable[[Path], SyscallFamily]  # raises KernelFeatureMissing: the pre-check failed
    unsafe_in_auto: Callable[[], str | None] = _always_safe


LADDER: Sequence[Rung] = (
    Rung("kprobe", lambda tracefs: KprobePmu.create(), KprobePmu.uncounted_misses),
    Rung("kprobe-legacy", LegacyKprobes.create),
    Rung("tracepoint", SyscallTracepoints),
    Rung("raw_tracepoint", lambda tracefs: RawSyscallTracepoints()),
    Rung("tp_btf", lambda tracefs: BtfSyscallTracepoints.create()),
)
ATTACH_MODES = (AUTO, *(rung.name for rung in LADDER))


@dataclass(frozen=True)
class Failure:
    """A rung that did not work, and why."""

    family: str
    reason: str


@dataclass(frozen=True)
class Choice:
    family: str
    failures: tuple[Failure, ...]  # the rungs above it, in auto mode


def rungs(mode: str) -> Sequence[Rung]:
    """The rungs to try for an attach mode: all of them, or the one forced."""
    if mode == AUTO:
        return LADDER
    for rung in LADDER:
        if rung.name == mode:
            return (rung,)
    raise RawtraceError(f"unknown attach mode {mode!r}", f"use one of {', '.join(ATTACH_MODES)}")


def climb(mode: str, tracefs: Path, attach: Callable[[SyscallFamily], None]) -> Choice:
    """Attach with the first family of `mode` that works: `attach(family)` attaches everything
    or releases what it made and raises. A missing permission stops the climb at once; when
    no family works and the verifier refused a program, that refusal (with its log) is raised,
    since it is a bug to report, not a missing kernel feature."""
    failures: list[Failure] = []
    rejected: VerifierError | None = None
    for rung in rungs(mode):
        unsafe = rung.unsafe_in_auto() if mode == AUTO else None
        if unsafe:
            failures.append(Failure(rung.name, unsafe))
            continue
        try:
            attach(rung.make(tracefs))
        except PermissionMissing:
            raise
        except RawtraceError as exc:
            if mode != AUTO or out_of_fds(exc):  # the fd limit: any family would fail alike
                raise
            if isinstance(exc, VerifierError) and rejected is None:
                rejected = exc
            failures.append(Failure(rung.name, reason(exc)))
        except OSError as exc:
            if out_of_fds(exc):
                raise
            if mode != AUTO:
                raise KernelFeatureMissing(
                    f"attaching with {rung.name} failed: {reason(exc)}", "try --attach auto"
                ) from exc
            failures.append(Failure(rung.name, reason(exc)))
        else:
            return Choice(rung.name, tuple(failures))
    if rejected is not None:
        raise rejected
    raise KernelFeatureMissing(
        "no attach family works on this kernel: "
        + "; ".join(f"{f.family}: {f.reason}" for f in failures),
        "run `rawtrace features` to see what the kernel offers",
    )
