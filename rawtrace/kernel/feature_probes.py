"""Feature probes: what this kernel's bpf() accepts, found by the smallest possible attempt
(libbpf's features.c and cilium/ebpf's features/ do the same). A probe answers True or False;
an attempt that fails for another reason (no permission) raises, and is not cached.
"""

from __future__ import annotations

import errno
import functools
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Callable

from bpf_bytecode import Helper, Item, Reg
from bpf_bytecode.asm import call, exit_, mov64_imm
from kernel_compat import Btf, FeatureMissing, load_vmlinux_btf
from rawtrace.errors import VerifierError
from rawtrace.kernel import bpf
from rawtrace.kernel.bpf import AttachType, MapType, ProgType
from rawtrace.kernel.fd import OwnedFd
from rawtrace.kernel.loading import load_program
from rawtrace.kernel.privileges import Refused, refusal

_RETURN_0: Sequence[Item] = (mov64_imm(Reg.R0, 0), exit_())
# The verifier's words for a helper it does not know or does not offer to this program type,
# old and new: "invalid func unknown#113", "unknown func bpf_xyz#113", "program of this type
# cannot use helper bpf_xyz#44" (libbpf's probe_helper() looks for the same).
_NO_HELPER = ("invalid func ", "unknown func ", "program of this type cannot use helper ")
# tp_btf programs name their tracepoint by the BTF id of its "btf_trace_<name>" typedef.
TP_BTF_PREFIX = "btf_trace_"


def _load(
    prog_type: ProgType,
    code: Sequence[Item],
    expected_attach_type: AttachType = AttachType.NONE,
    attach_btf_id: int = 0,
) -> None:
    program = load_program(
        "probe",
        prog_type,
        code,
        expected_attach_type=expected_attach_type,
        attach_btf_id=attach_btf_id,
    )
    program.close()


@functools.cache
def _vmlinux_btf() -> Btf:
    return load_vmlinux_btf()  # about 0.3 s for the 5 MB of a 6.18 kernel: parse it once


def tp_btf_id(tracepoint: str) -> int:
    """The attach_btf_id of a tp_btf program on `tracepoint`; FeatureMissing without BTF."""
    return _vmlinux_btf().type_id(TP_BTF_PREFIX + tracepoint, kind="typedef")


@functools.cache
def prog_type_available(prog_type: ProgType) -> bool:
    """Whether a program of `prog_type` that returns 0 loads. A tracing program needs a target:
    it is loaded as tp_btf on sys_enter, so it also needs the kernel's BTF."""
    attach_type, btf_id = AttachType.NONE, 0
    if prog_type == ProgType.TRACING:
        try:
            attach_type, btf_id = AttachType.TRACE_RAW_TP, tp_btf_id("sys_enter")
        except FeatureMissing:
            return False
    try:
        _load(prog_type, _RETURN_0, attach_type, btf_id)
    except VerifierError as exc:
        if exc.errno in (errno.EINVAL, errno.E2BIG, errno.EOPNOTSUPP):
            return False
        raise
    return True


@functools.cache
def helper_available(prog_type: ProgType, helper: Helper) -> bool:
    """Whether programs of `prog_type` may call `helper`. The probe calls it with arguments the
    verifier rejects: only the verifier's words tell an unknown helper from bad arguments."""
    try:
        _load(prog_type, (call(helper), *_RETURN_0))
    except VerifierError as exc:
        return not any(words in exc.log for words in _NO_HELPER)
    return True


@functools.cache
def map_type_available(map_type: MapType) -> bool:
    """Whether a one-entry map of `map_type` can be created."""
    # A ring buffer's size is its max_entries: a power of two of pages, without keys or values.
    sizes = (0, 0, 4096) if map_type == MapType.RINGBUF else (4, 4, 1)
    try:
        fd = bpf.map_create(map_type, *sizes, name="probe")
    except OSError as exc:
        if exc.errno == errno.EPERM:
            raise refusal(f"to create a BPF map ({map_type.name})", exc, Refused.BPF) from exc
        if exc.errno in (errno.EINVAL, errno.E2BIG, errno.EOPNOTSUPP):
            return False
        raise
    OwnedFd(fd).close()
    return True


@dataclass(frozen=True)
class FeatureProbe:
    """One row of the feature table."""

    kind: str  # "program type", "map type" or "helper"
    name: str
    description: str
    probe: Callable[[], bool]


def _prog(prog_type: ProgType, description: str) -> FeatureProbe:
    return FeatureProbe(
        "program type",
        prog_type.name.lower(),
        description,
        lambda: prog_type_available(prog_type),
    )


def _map(map_type: MapType, description: str) -> FeatureProbe:
    return FeatureProbe(
        "map type", map_type.name.lower(), description, lambda: map_type_available(map_type)
    )


def _helper(prog_type: ProgType, helper: Helper, description: str) -> FeatureProbe:
    return FeatureProbe(
        "helper",
        f"{prog_type.name.lower()}:bpf_{helper.name.lower()}",
        description,
        lambda: helper_available(prog_type, helper),
    )


# What each filter kind needs in the kernel (rawtrace.filters.placing decides with them): the
# helper that reads the caller's value, and for --follow the map and the fork tracker's programs.
TRACEPOINT_PROGRAMS = _prog(ProgType.TRACEPOINT, "tracepoint programs (4.7)")
HASH_MAPS = _map(MapType.HASH, "hash maps (3.19)")
CURRENT_PID_TGID = _helper(
    ProgType.KPROBE, Helper.GET_CURRENT_PID_TGID, "the caller's pid and tid (4.2)"
)
CURRENT_UID_GID = _helper(ProgType.KPROBE, Helper.GET_CURRENT_UID_GID, "the caller's uid (4.2)")
CURRENT_COMM = _helper(ProgType.KPROBE, Helper.GET_CURRENT_COMM, "the caller's comm (4.2)")
CURRENT_CGROUP_ID = _helper(
    ProgType.KPROBE, Helper.GET_CURRENT_CGROUP_ID, "the caller's cgroup id (4.18)"
)

# What rawtrace uses or falls back on, with the kernel that brought it.
FEATURES: tuple[FeatureProbe, ...] = (
    _prog(ProgType.KPROBE, "kprobe and kretprobe programs (4.1)"),
    TRACEPOINT_PROGRAMS,
    _prog(ProgType.RAW_TRACEPOINT, "raw tracepoint programs (4.17)"),
    _prog(ProgType.TRACING, "tp_btf programs, with the kernel's BTF (5.5)"),
    HASH_MAPS,
    _map(MapType.LRU_HASH, "LRU hash maps, for start times (4.10)"),
    _map(MapType.PERF_EVENT_ARRAY, "perf rings (4.3)"),
    _map(MapType.RINGBUF, "the BPF ring buffer (5.8)"),
    _helper(ProgType.KPROBE, Helper.PERF_EVENT_OUTPUT, "records to perf rings (4.4)"),
    _helper(ProgType.KPROBE, Helper.RINGBUF_OUTPUT, "records to the BPF ring buffer (5.8)"),
    CURRENT_PID_TGID,
    CURRENT_UID_GID,
    CURRENT_COMM,
    CURRENT_CGROUP_ID,
    _helper(ProgType.RAW_TRACEPOINT, Helper.PROBE_READ, "reading kernel memory (4.1)"),
    _helper(ProgType.RAW_TRACEPOINT, Helper.PROBE_READ_KERNEL, "the same, kernel only (5.5)"),
)
