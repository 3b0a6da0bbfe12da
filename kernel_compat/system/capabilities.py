"""The effective capabilities of this process, from /proc/self/status."""

from __future__ import annotations

import enum
import os

from .._files import read_text, under
from ..fact_errors import KernelFactError

__all__ = ["Capability", "capability_name", "effective_capabilities"]

_STATUS = "/proc/self/status"


class Capability(enum.IntEnum):
    """Linux capability numbers (include/uapi/linux/capability.h)."""

    CHOWN = 0
    DAC_OVERRIDE = 1
    DAC_READ_SEARCH = 2
    FOWNER = 3
    FSETID = 4
    KILL = 5
    SETGID = 6
    SETUID = 7
    SETPCAP = 8
    LINUX_IMMUTABLE = 9
    NET_BIND_SERVICE = 10
    NET_BROADCAST = 11
    NET_ADMIN = 12
    NET_RAW = 13
    IPC_LOCK = 14
    IPC_OWNER = 15
    SYS_MODULE = 16
    SYS_RAWIO = 17
    SYS_CHROOT = 18
    SYS_PTRACE = 19
    SYS_PACCT = 20
    SYS_ADMIN = 21
    SYS_BOOT = 22
    SYS_NICE = 23
    SYS_RESOURCE = 24
    SYS_TIME = 25
    SYS_TTY_CONFIG = 26
    MKNOD = 27
    LEASE = 28
    AUDIT_WRITE = 29
    AUDIT_CONTROL = 30
    SETFCAP = 31
    MAC_OVERRIDE = 32
    MAC_ADMIN = 33
    SYSLOG = 34
    WAKE_ALARM = 35
    BLOCK_SUSPEND = 36
    AUDIT_READ = 37
    PERFMON = 38  # Linux 5.8: perf_event_open and some bpf() without SYS_ADMIN.
    BPF = 39  # Linux 5.8: bpf() without SYS_ADMIN.
    CHECKPOINT_RESTORE = 40


def capability_name(cap: Capability) -> str:
    """Return the kernel's name for `cap`, e.g. "CAP_BPF"."""
    return "CAP_" + Capability(cap).name


def effective_capabilities(root: str | os.PathLike[str] = "/") -> frozenset[Capability]:
    """Return the effective capability set of the calling process."""
    path = under(root, _STATUS)
    text = read_text(path, f"{path} does not exist")
    try:
        return _parse_cap_eff(text)
    except ValueError as exc:
        raise KernelFactError(f"cannot parse {path}: {exc}") from exc


def _parse_cap_eff(text: str) -> frozenset[Capability]:
    """Parse the "CapEff:\\t<hex>" line of a /proc/<pid>/status text."""
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key == "CapEff":
            try:
                mask = int(value.strip(), 16)
            except ValueError:
                raise ValueError(f"bad CapEff value {value.strip()!r}") from None
            # Newer kernels may define bits this table does not know; they cannot matter here.
            return frozenset(cap for cap in Capability if mask >> cap & 1)
    raise ValueError("no CapEff line")
