"""The syscall family on a kprobe at the syscall's kernel function and a kretprobe at its return,
made through the perf "kprobe" PMU (Linux 4.17, commit e12f03d7031a "perf/core: Implement the
'perf_kprobe' PMU").

Glossary: the PMU's perf_event_attr.type is read from /sys/bus/event_source/devices/kprobe/type,
found by name: numbers are handed out at boot, and on a kernel without kprobes the same number
can be another PMU that accepts the attr and counts time. `config` holds the retprobe bit (its
position in format/retprobe), `config1` points at the NUL-terminated symbol, `config2` is the
offset into it. The probe is private to its perf event: it vanishes with the fd, so a killed
tracer leaves nothing behind (unlike kprobe_legacy's tracefs probes).

Like a tracepoint, one event opened with pid=-1, cpu=0 runs the program on every CPU: the BPF
program hangs off the probe's trace_event_call, which kprobe_perf_func() runs before it looks
at the event's CPU.
"""

from __future__ import annotations

import struct
from contextlib import ExitStack
from typing import Callable, Protocol, TypeVar

from bpf_bytecode import Helper
from bpf_bytecode.programs.capture import ArgsInContext, ArgsInUserRegs, SyscallArgs
from bpf_bytecode.programs.syscall import ret_at
from kernel_compat import FeatureMissing, kernel_release, pmu_format_bit, pmu_type
from kernel_compat.arch import PtRegs, pt_regs_layout
from kernel_compat.kallsyms import is_syscall_wrapper
from rawtrace.attach import Attached, Link, SyscallPrograms, total_missed
from rawtrace.attach.perf_attach import PerfEventLink, attach_perf_event, open_probe_event
from rawtrace.attach.requirements import require_kprobes, syscall_symbol
from rawtrace.errors import KernelFeatureMissing
from rawtrace.kernel import bpf
from rawtrace.kernel.bpf import ProgType
from rawtrace.kernel.feature_probes import helper_available
from rawtrace.kernel.ffi import address_of
from rawtrace.kernel.loading import Program
from rawtrace.kernel.perf_event import PERF_SAMPLE_RAW, perf_event_attr


class _Closable(Protocol):
    def close(self) -> None: ...


_ProbeLink = TypeVar("_ProbeLink", bound=_Closable)

# struct bpf_link_info for a perf-event link: the union starts at 16 with perf_event.type, and
# perf_event.kprobe.missed sits at 48 (Linux 6.7, "bpf: Add missed value to kprobe perf link
# info"; perf-event links report info since 6.6, "bpf: Support ->fill_link_info for perf_event").
_LINK_INFO_SIZE = 64
_PERF_EVENT_TYPE, _KPROBE_MISSED = 16, 48


def attach_syscall_kprobes(
    syscall: str,
    programs: SyscallPrograms,
    attach_probe: Callable[[Program, str, bool], _ProbeLink],
) -> tuple[ExitStack, list[_ProbeLink]]:
    """Load the kprobe programs of `syscall` and attach them with `attach_probe(program,
    symbol, is_return)`: an ExitStack that closes the links, and the links, exit first.
    On failure it closes whatever it attached and raises."""
    symbol = syscall_symbol(syscall)
    try:
        regs = pt_regs_layout()
    except FeatureMissing as exc:
        raise KernelFeatureMissing(str(exc), "use --attach tracepoint") from exc
    hooks = []
    if not programs.at_entry:
        hooks.append((programs.exit(ProgType.KPROBE, ret_at(regs.return_value)), True))
    hooks.append((programs.enter(ProgType.KPROBE, args=_args(symbol, regs)), False))
    with ExitStack() as stack:
        # Exit first: an entry seen without its exit would only leave a stale start time.
        attached = []
        for program, is_return in hooks:
            link = attach_probe(program, symbol, is_return)
            stack.callback(link.close)
            attached.append(link)
        return stack.pop_all(), attached


def _args(symbol: str, regs: PtRegs) -> SyscallArgs:
    """Where the syscall's arguments are at the entry of its kernel function: behind the
    wrapper's one argument, the user's pt_regs (4.17+), or else in the function's arguments."""
    if not is_syscall_wrapper(symbol):
        return ArgsInContext(regs.call_args)
    # bpf_probe_read_kernel came in 5.5 (commit 6ae08ae3dea2); before, bpf_probe_read.
    probe_read = (
        Helper.PROBE_READ_KERNEL
        if helper_available(ProgType.KPROBE, Helper.PROBE_READ_KERNEL)
        else Helper.PROBE_READ
    )
    return ArgsInUserRegs(regs.call_args[0], regs.syscall_args, probe_read)


class KprobePmu:
    """kprobe/kretprobe perf events of the kprobe PMU."""

    name = "kprobe"

    def __init__(self, pmu: int, retprobe_bit: int) -> None:
        self.pmu = pmu
        self.retprobe_bit = retprobe_bit

    @classmethod
    def create(cls) -> KprobePmu:
        require_kprobes()
        try:
            return cls(pmu_type("kprobe"), pmu_format_bit("kprobe", "retprobe"))
        except FeatureMissing as exc:
            raise KernelFeatureMissing(
                f"this kernel has no kprobe PMU ({exc}); it came in Linux 4.17",
                "use --attach kprobe-legacy",
            ) from exc

    @staticmethod
    def uncounted_misses() -> str | None:
        """Why auto mode should not pick this family here, if it should not."""
        if kernel_release().at_least(6, 7):
            return None
        # A vfork parent holds a kretprobe instance until its child execs or exits; the PMU
        # cannot raise their number from max(10, 2 x CPUs) and reports no misses before 6.7.
        return (
            "its kretprobe could run out of instances under a vfork storm and this kernel "
            "(before 6.7) would not count the lost calls; kprobe-legacy counts them"
        )

    def attach_syscall(self, syscall: str, programs: SyscallPrograms) -> Link:
        stack, links = attach_syscall_kprobes(syscall, programs, self.attach_probe)
        return Attached(stack, lambda: total_missed(map(_kprobe_missed, links)))

    def attach_probe(self, program: Program, symbol: str, is_return: bool) -> PerfEventLink:
        """A kprobe (or kretprobe) on `symbol`, running `program`."""
        kind = "kretprobe" if is_return else "kprobe"
        name = bytearray(symbol.encode() + b"\0")  # referenced until perf_event_open returns
        attr = perf_event_attr(
            self.pmu,
            1 << self.retprobe_bit if is_return else 0,
            sample_period=1,
            sample_type=PERF_SAMPLE_RAW,
            wakeup=1,
            config1=address_of(name),
            config2=0,
        )
        event = open_probe_event(attr, f"a {kind} on {symbol}")
        return attach_perf_event(event, program, f"{kind} {symbol}")


def _kprobe_missed(link: PerfEventLink) -> int | None:
    """The probe's misses, from its BPF link's info (6.7+); None where the kernel keeps them to
    itself: attached by ioctl (before 5.15), or a kernel before 6.7."""
    if link.link_fd is None or not kernel_release().at_least(6, 7):
        return None
    info = bpf.obj_get_info_by_fd(link.link_fd, _LINK_INFO_SIZE)
    (perf_event_type,) = struct.unpack_from("<I", info, _PERF_EVENT_TYPE)
    if perf_event_type == 0:  # the kernel did not fill it in (a backport without the field)
        return None
    (missed,) = struct.unpack_from("<Q", info, _KPROBE_MISSED)
    return int(missed)
