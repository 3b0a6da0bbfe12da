"""The syscall family on the raw tracepoints sys_enter and sys_exit (BPF_PROG_TYPE_RAW_TRACEPOINT,
Linux 4.17, commit c4f6699dfcb8 "bpf: introduce BPF_RAW_TRACEPOINT"), which fire for every
syscall: the programs pick theirs out by number. Also the core that tp_btf shares: the context
of both is the tracepoint's arguments, and both attach with BPF_RAW_TRACEPOINT_OPEN.

sys_enter passes the number; sys_exit passes only regs and the return value, so the exit
program reads the number from regs (orig_ax on x86_64) with a probe-read helper.
"""

from __future__ import annotations

from contextlib import ExitStack

from bpf_bytecode import Helper
from bpf_bytecode.programs.capture import ArgsInUserRegs
from bpf_bytecode.programs.syscall import (
    RAW_ARG_REGS,
    raw_syscall_enter_match,
    raw_syscall_exit_ret,
)
from kernel_compat import FeatureMissing
from kernel_compat.arch import exits_seen_as, pt_regs_layout, syscall_number
from rawtrace.attach import Attached, Link, SyscallPrograms
from rawtrace.errors import KernelFeatureMissing
from rawtrace.kernel import bpf
from rawtrace.kernel.bpf import AttachType, ProgType
from rawtrace.kernel.fd import OwnedFd
from rawtrace.kernel.feature_probes import helper_available


def attach_raw_syscall(
    syscall: str,
    programs: SyscallPrograms,
    prog_type: ProgType,
    probe_read: Helper,
    *,
    expected_attach_type: AttachType = AttachType.NONE,
    btf_ids: tuple[int, int] = (0, 0),
    tracepoints: tuple[str | None, str | None] = ("sys_enter", "sys_exit"),
) -> Link:
    """Load the enter and exit programs of `syscall` for sys_enter/sys_exit and attach them.

    `btf_ids` and `tracepoints` are the (enter, exit) attach_btf_id and tracepoint name: a
    raw tracepoint program names its tracepoint, a tp_btf program has it in its BTF id.
    """
    try:
        nr = syscall_number(syscall)
        exit_nrs = [nr, *(syscall_number(other) for other in exits_seen_as(syscall))]
        regs = pt_regs_layout()
    except FeatureMissing as exc:
        raise KernelFeatureMissing(str(exc), "use --attach tracepoint") from exc
    hooks = []
    if not programs.at_entry:
        exit_code = raw_syscall_exit_ret(
            exit_nrs, regs.syscall_nr, regs.syscall_nr_size, probe_read
        )
        leave = programs.exit(
            prog_type,
            exit_code,
            expected_attach_type=expected_attach_type,
            attach_btf_id=btf_ids[1],
        )
        hooks.append((leave, tracepoints[1]))
    enter = programs.enter(
        prog_type,
        raw_syscall_enter_match(nr),
        args=ArgsInUserRegs(RAW_ARG_REGS, regs.syscall_args, probe_read),
        expected_attach_type=expected_attach_type,
        attach_btf_id=btf_ids[0],
    )
    hooks.append((enter, tracepoints[0]))
    with ExitStack() as links:
        # Exit first: an entry seen without its exit would only leave a stale start time.
        for program, tracepoint in hooks:
            links.enter_context(OwnedFd(bpf.raw_tracepoint_open(tracepoint, program.fileno())))
        return Attached(links.pop_all())


class RawSyscallTracepoints:
    """sys_enter and sys_exit as raw tracepoints."""

    name = "raw_tracepoint"

    def attach_syscall(self, syscall: str, programs: SyscallPrograms) -> Link:
        # bpf_probe_read_kernel came in 5.5 (commit 6ae08ae3dea2); before, bpf_probe_read.
        probe_read = (
            Helper.PROBE_READ_KERNEL
            if helper_available(ProgType.RAW_TRACEPOINT, Helper.PROBE_READ_KERNEL)
            else Helper.PROBE_READ
        )
        return attach_raw_syscall(syscall, programs, ProgType.RAW_TRACEPOINT, probe_read)
