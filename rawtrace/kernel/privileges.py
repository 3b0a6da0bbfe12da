"""May this process trace? Checked before anything is loaded; and when the kernel refuses anyway
(EPERM or EACCES from bpf(), perf_event_open() or tracefs), which setting refused it.

The settings, and whom they stop (kernel/bpf/syscall.c, kernel/events/core.c,
security/lockdown):
- kernel.unprivileged_bpf_disabled: every bpf() call of a process without CAP_BPF (or
  CAP_SYS_ADMIN). Tracing programs need CAP_BPF and CAP_PERFMON whatever its value.
- kernel.perf_event_paranoid: perf events of a process without CAP_PERFMON (or CAP_SYS_ADMIN);
  above 0 it refuses events on every CPU, above -1 tracepoint data.
- lockdown "confidentiality": kprobes, tracefs and BPF reads of kernel memory, for everyone,
  root included; it can be raised while running but never lowered.
- RLIMIT_MEMLOCK, before 5.11 (commit 97306be45fbe): BPF maps and programs are charged to it;
  since, to the memory cgroup (bpf_memory_charged_to_memcg() probes which).
"""

from __future__ import annotations

import contextlib
import enum
import errno
import functools
import os
import resource
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Callable, TypeVar

from bpf_bytecode import Helper, Reg, assemble
from bpf_bytecode.asm import call, exit_, mov64_imm
from kernel_compat import (
    Capability,
    KernelFactError,
    capability_name,
    effective_capabilities,
    kernel_release,
    lockdown,
    memlock_limit,
    perf_event_paranoid,
    unprivileged_bpf_disabled,
)
from rawtrace.errors import PermissionMissing
from rawtrace.kernel import bpf
from rawtrace.kernel.bpf import ProgType

# Since 5.8 CAP_BPF plus CAP_PERFMON suffice; CAP_SYS_ADMIN alone still covers both everywhere.
_NEEDED = (Capability.BPF, Capability.PERFMON)
_AS_ROOT = "run it as root: sudo rawtrace ..."

T = TypeVar("T")


def require_tracing_capabilities() -> None:
    """Raise PermissionMissing naming the missing capabilities."""
    missing = _missing(effective_capabilities(), _NEEDED)
    if missing:
        raise PermissionMissing(
            f"tracing needs {_names(missing)} (or CAP_SYS_ADMIN), which this process lacks",
            _AS_ROOT,
        )


class Refused(enum.Enum):
    """What the kernel refused."""

    BPF = "bpf"  # a map, a program or an attachment
    PERF_EVENT = "perf_event_open"
    TRACEFS = "tracefs"  # defining a probe in kprobe_events


@dataclass(frozen=True)
class Restrictions:
    """The settings that can refuse a tracer; None where a fact could not be read."""

    capabilities: frozenset[Capability] | None
    lockdown: str | None  # "none", "integrity", "confidentiality"; None without the LSM
    unprivileged_bpf_disabled: int | None
    perf_event_paranoid: int | None
    memlock_charged: bool  # a kernel before 5.11
    memlock_limit: int | None  # bytes; None when unlimited (or unknown)

    @classmethod
    def read(cls, root: str | os.PathLike[str] = "/") -> Restrictions:
        release = _known(lambda: kernel_release(root))
        return cls(
            capabilities=_known(lambda: effective_capabilities(root)),
            lockdown=_known(lambda: lockdown(root)),
            unprivileged_bpf_disabled=_known(lambda: unprivileged_bpf_disabled(root)),
            perf_event_paranoid=_known(lambda: perf_event_paranoid(root)),
            memlock_charged=release is not None and not release.at_least(5, 11),
            memlock_limit=_known(lambda: memlock_limit("self", root)),
        )


def refusal(
    what: str, error: OSError, refused: Refused, root: str | os.PathLike[str] = "/"
) -> PermissionMissing:
    """The error for an EPERM or EACCES: `what` was refused ("to load BPF program 'x'"), and
    the cause that the settings under `root` point to, with its fix."""
    cause, fix = diagnose(refused, Restrictions.read(root))
    return PermissionMissing(f"the kernel refused {what} ({error.strerror}): {cause}", fix)


def diagnose(refused: Refused, facts: Restrictions) -> tuple[str, str]:
    """The likeliest cause of a refusal given the settings, and its fix; the first rule that
    matches wins, the most specific first."""
    caps = facts.capabilities
    if facts.lockdown == "confidentiality" and refused is not Refused.BPF:
        return (
            "the kernel is locked down for confidentiality (/sys/kernel/security/lockdown), "
            "which forbids kprobes, tracefs and perf access to kernel data to every process, "
            "root included",
            "boot without lockdown=confidentiality (Secure Boot may set it): it cannot be "
            "lowered while the kernel runs",
        )
    if refused is Refused.TRACEFS:
        return "tracefs is root's", _AS_ROOT
    needed = _NEEDED if refused is Refused.BPF else (Capability.PERFMON,)
    missing = _missing(caps, needed) if caps is not None else []
    unprivileged = facts.unprivileged_bpf_disabled
    if refused is Refused.BPF and Capability.BPF in missing and unprivileged:
        return (
            f"kernel.unprivileged_bpf_disabled is {unprivileged}, which keeps bpf() from "
            "processes without CAP_BPF (or CAP_SYS_ADMIN), and this one lacks "
            f"{_names(missing)}",
            f"{_AS_ROOT}, or give it CAP_BPF and CAP_PERFMON (tracing programs need both "
            "whatever the sysctl says)",
        )
    paranoid = facts.perf_event_paranoid
    if refused is Refused.PERF_EVENT and missing and paranoid is not None and paranoid > -1:
        return (
            f"kernel.perf_event_paranoid is {paranoid}, which keeps tracepoints and "
            "system-wide perf events from processes without CAP_PERFMON (or CAP_SYS_ADMIN), "
            "and this one lacks it",
            f"{_AS_ROOT}, or give it CAP_PERFMON and CAP_BPF (BPF programs need both whatever "
            "the sysctl says)",
        )
    if missing:
        return f"this process lacks {_names(missing)} (or CAP_SYS_ADMIN)", _AS_ROOT
    if refused is Refused.BPF and facts.memlock_charged and facts.memlock_limit is not None:
        return (
            "kernels before 5.11 charge BPF maps and programs to RLIMIT_MEMLOCK, and this "
            f"process's limit is {facts.memlock_limit // 1024} KiB, which rawtrace could not "
            "raise",
            "raise it before rawtrace starts (`ulimit -l unlimited` as root, "
            "LimitMEMLOCK=infinity in a systemd unit), or give rawtrace CAP_SYS_RESOURCE to "
            "raise it itself",
        )
    holds = "" if caps is None else "this process holds the capabilities it needs and "
    return (
        f"{holds}no kernel setting explains it: a security module (SELinux, AppArmor, "
        "seccomp) or a container's user namespace may forbid it",
        "run rawtrace as root on the host, outside containers and confining profiles",
    )


def _missing(caps: frozenset[Capability], needed: Sequence[Capability]) -> list[Capability]:
    if Capability.SYS_ADMIN in caps:
        return []
    return [cap for cap in needed if cap not in caps]


def _names(caps: Sequence[Capability]) -> str:
    return " and ".join(capability_name(cap) for cap in caps)


def _known(read: Callable[[], T]) -> T | None:
    # A refusal is being explained: a fact that cannot be read only leaves its rule out.
    try:
        return read()
    except KernelFactError:
        return None


@functools.cache
def bpf_memory_charged_to_memcg() -> bool:
    """Whether the kernel charges BPF memory to the memory cgroup instead of RLIMIT_MEMLOCK
    (5.11, commit 97306be45fbe). No call tells; like libbpf's probe_memcg_account(), this loads
    a socket filter calling bpf_ktime_get_coarse_ns(), which came in the same release (commit
    d05512618056). The verifier's refusal of the helper answers False; any other failure
    (EPERM: no privilege, or a limit already spent) raises and is not cached."""
    code = assemble((call(Helper.KTIME_GET_COARSE_NS), mov64_imm(Reg.R0, 0), exit_()))
    try:
        fd = bpf.prog_load(ProgType.SOCKET_FILTER, code, "memcg_probe")
    except OSError as exc:
        if exc.errno in (errno.EINVAL, errno.E2BIG):
            return False
        raise
    os.close(fd)
    return True


def lift_memlock_limit() -> None:
    # Where BPF memory is charged to RLIMIT_MEMLOCK (before 5.11), its default of 64 KiB to
    # 8 MiB is too small for the rings and maps.
    with contextlib.suppress(OSError):  # undecided: the limit may be what refused the probe
        if bpf_memory_charged_to_memcg():
            return
    # Where this fails, map creation fails with a message that names the limit.
    with contextlib.suppress(ValueError, OSError):
        resource.setrlimit(resource.RLIMIT_MEMLOCK, (resource.RLIM_INFINITY,) * 2)
