"""The syscall family on sys_enter and sys_exit as BTF-typed raw tracepoints (tp_btf:
BPF_PROG_TYPE_TRACING with expected_attach_type BPF_TRACE_RAW_TP, Linux 5.5). The program names
its tracepoint by the BTF id of the typedef btf_trace_<name> in the kernel's BTF, and is attached
with BPF_RAW_TRACEPOINT_OPEN without a name, as libbpf did before BPF_LINK_CREATE took raw
tracepoints (6.10). Context and programs are the raw tracepoint family's.
"""

from __future__ import annotations

from bpf_bytecode import Helper
from kernel_compat import FeatureMissing, KernelFactError
from rawtrace.attach import Link, SyscallPrograms
from rawtrace.attach.raw_tracepoint import attach_raw_syscall
from rawtrace.errors import KernelFeatureMissing
from rawtrace.kernel.bpf import AttachType, ProgType
from rawtrace.kernel.feature_probes import tp_btf_id


class BtfSyscallTracepoints:
    """sys_enter and sys_exit as tp_btf programs."""

    name = "tp_btf"

    def __init__(self, btf_ids: tuple[int, int]) -> None:
        self.btf_ids = btf_ids

    @classmethod
    def create(cls) -> BtfSyscallTracepoints:
        try:
            return cls((tp_btf_id("sys_enter"), tp_btf_id("sys_exit")))
        except FeatureMissing as exc:
            raise KernelFeatureMissing(
                f"tp_btf needs the kernel's BTF: {exc}",
                "use a kernel built with CONFIG_DEBUG_INFO_BTF, or --attach raw_tracepoint",
            ) from exc
        except KernelFactError as exc:
            raise KernelFeatureMissing(f"cannot read the kernel's BTF: {exc}") from exc

    def attach_syscall(self, syscall: str, programs: SyscallPrograms) -> Link:
        # tp_btf came after bpf_probe_read_kernel (5.5 both), so no fallback is needed.
        return attach_raw_syscall(
            syscall,
            programs,
            ProgType.TRACING,
            Helper.PROBE_READ_KERNEL,
            expected_attach_type=AttachType.TRACE_RAW_TP,
            btf_ids=self.btf_ids,
            tracepoints=(None, None),
        )
