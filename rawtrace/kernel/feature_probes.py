"""Feature facts: what rawtrace uses or falls back on, each with a name, the first kernel release
that has it (the commit that brought it in a comment), the build options it needs, and its probe:
the smallest possible attempt (libbpf's features.c, cilium/ebpf's internal/feature.go). A probe
answers True or False; an attempt that fails for another reason (no permission) raises, and is
not cached. Tests skip a feature on kernels older than its release and fail when a kernel new
enough lacks it (tests/rawtrace/kernel_features.py).
"""

from __future__ import annotations

import errno
import functools
import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Callable

from bpf_bytecode import Helper, Item, Reg
from bpf_bytecode.asm import call, exit_, mov64_imm
from kernel_compat import (
    Btf,
    FeatureMissing,
    KernelFactError,
    load_vmlinux_btf,
    pmu_type,
    read_tracepoint_format,
)
from rawtrace.errors import KernelFeatureMissing, VerifierError
from rawtrace.kernel import bpf
from rawtrace.kernel.bpf import AttachType, MapType, ProgType
from rawtrace.kernel.fd import OwnedFd
from rawtrace.kernel.loading import load_program
from rawtrace.kernel.privileges import Refused, bpf_memory_charged_to_memcg, refusal
from rawtrace.kernel.tracefs_mount import ensure_tracefs

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


@functools.cache
def perf_link_available() -> bool:
    """Whether BPF_LINK_CREATE attaches programs to perf events (5.15, commit b89fbfbb854c).
    As libbpf's probe_perf_link(): a link to the invalid fd -1 fails with EBADF where the
    kernel knows perf links, EINVAL where it does not."""
    program = load_program("probe", ProgType.TRACEPOINT, _RETURN_0)
    try:
        # target_fd is a u32 in bpf_attr: -1 as the kernel reads it
        os.close(bpf.link_create(program.fileno(), 0xFFFFFFFF, AttachType.PERF_EVENT))
    except OSError as exc:
        if exc.errno == errno.EBADF:
            return True
        if exc.errno in (errno.EINVAL, errno.EOPNOTSUPP, _ENOTSUPP):
            return False
        raise
    finally:
        program.close()
    return True


_ENOTSUPP = 524  # kernel-internal errno that some bpf() paths leak to user space


def _kprobe_pmu() -> bool:
    """The perf kprobe PMU (perf_event_open with type kprobe), and kprobe programs."""
    try:
        pmu_type("kprobe")
    except FeatureMissing:
        return False
    return prog_type_available(ProgType.KPROBE)


def _kprobe_events() -> bool:
    """tracefs kprobe_events, where kprobes are defined by name, and kprobe programs."""
    try:
        tracefs = ensure_tracefs()
    except KernelFeatureMissing:
        return False
    return (tracefs / "kprobe_events").exists() and prog_type_available(ProgType.KPROBE)


def _syscall_tracepoints() -> bool:
    """The syscalls:sys_enter_X tracepoints, and tracepoint programs."""
    try:
        read_tracepoint_format(ensure_tracefs(), "syscalls", "sys_enter_execve")
    except (KernelFeatureMissing, KernelFactError):
        return False
    return prog_type_available(ProgType.TRACEPOINT)


@dataclass(frozen=True)
class FeatureProbe:
    """One feature fact: what it is, the kernel that brought it, and how to find it."""

    kind: str  # "program type", "map type", "helper", "attach", "link" or "memory"
    name: str  # unique among the facts: a key for feature() and tests' require_feature()
    description: str  # what it is, with the release that brought it: "hash maps (3.19)"
    probe: Callable[[], bool]
    since: tuple[int, int] | None = None  # the first release that has it; None: not known
    config: tuple[str, ...] = ()  # options (CONFIG_<x>) a kernel that new may still lack


def _fact(
    kind: str,
    name: str,
    what: str,
    since: tuple[int, int],
    probe: Callable[[], bool],
    config: tuple[str, ...] = (),
) -> FeatureProbe:
    return FeatureProbe(kind, name, f"{what} ({since[0]}.{since[1]})", probe, since, config)


def _prog(prog_type: ProgType, what: str, since: tuple[int, int]) -> FeatureProbe:
    name = prog_type.name.lower()
    return _fact("program type", name, what, since, lambda: prog_type_available(prog_type))


def _map(map_type: MapType, what: str, since: tuple[int, int]) -> FeatureProbe:
    name = map_type.name.lower()
    return _fact("map type", name, what, since, lambda: map_type_available(map_type))


def _helper(prog_type: ProgType, helper: Helper, what: str, since: tuple[int, int]) -> FeatureProbe:
    name = f"{prog_type.name.lower()}:bpf_{helper.name.lower()}"
    return _fact("helper", name, what, since, lambda: helper_available(prog_type, helper))


_KPROBES = ("KPROBES", "KPROBE_EVENTS", "BPF_EVENTS")

# What each filter kind needs in the kernel (rawtrace.filters.placing decides with them): the
# helper that reads the caller's value, and for --follow the map and the fork tracker's programs.
# 98b5c2c65c29 "perf, bpf: allow bpf programs attach to tracepoints"
TRACEPOINT_PROGRAMS = _prog(ProgType.TRACEPOINT, "tracepoint programs", (4, 7))
# 0f8e4bd8a1fc "bpf: add hashtable type of eBPF maps"
HASH_MAPS = _map(MapType.HASH, "hash maps", (3, 19))
# ffeedafbf023 "bpf: introduce current->pid, tgid, uid, gid, comm accessors"
CURRENT_PID_TGID = _helper(
    ProgType.KPROBE, Helper.GET_CURRENT_PID_TGID, "the caller's pid and tid", (4, 2)
)
CURRENT_UID_GID = _helper(ProgType.KPROBE, Helper.GET_CURRENT_UID_GID, "the caller's uid", (4, 2))
CURRENT_COMM = _helper(ProgType.KPROBE, Helper.GET_CURRENT_COMM, "the caller's comm", (4, 2))
# bf6fa2c893c5 "bpf: implement bpf_get_current_cgroup_id() helper"
CURRENT_CGROUP_ID = _helper(
    ProgType.KPROBE, Helper.GET_CURRENT_CGROUP_ID, "the caller's cgroup id", (4, 18)
)
# b89fbfbb854c "bpf: Implement minimal BPF perf link"
PERF_LINK = _fact("link", "perf_link", "BPF links to perf events", (5, 15), perf_link_available)
# 97306be45fbe "Merge branch 'switch to memcg-based memory accounting'"
MEMCG_ACCOUNTING = _fact(
    "memory",
    "memcg_accounting",
    "BPF memory charged to the memory cgroup, not RLIMIT_MEMLOCK",
    (5, 11),
    bpf_memory_charged_to_memcg,
)

# What rawtrace uses or falls back on, with the kernel that brought it.
FEATURES: tuple[FeatureProbe, ...] = (
    # 2541517c32be "tracing, perf: Implement BPF programs attached to kprobes"
    _prog(ProgType.KPROBE, "kprobe and kretprobe programs", (4, 1)),
    TRACEPOINT_PROGRAMS,
    # c4f6699dfcb8 "bpf: introduce BPF_RAW_TRACEPOINT"
    _prog(ProgType.RAW_TRACEPOINT, "raw tracepoint programs", (4, 17)),
    # f1b9509c2fb0 "bpf: Replace prog_raw_tp+btf_id with prog_tracing"
    _prog(ProgType.TRACING, "tp_btf programs, with the kernel's BTF", (5, 5)),
    HASH_MAPS,
    # 29ba732acbee "bpf: Add BPF_MAP_TYPE_LRU_HASH"
    _map(MapType.LRU_HASH, "LRU hash maps, for start times", (4, 10)),
    # ea317b267e9d "bpf: Add new bpf map type to store the pointer to struct perf_event"
    _map(MapType.PERF_EVENT_ARRAY, "perf rings", (4, 3)),
    # 457f44363a88 "bpf: Implement BPF ring buffer and verifier support for it"
    _map(MapType.RINGBUF, "the BPF ring buffer", (5, 8)),
    # a43eec304259 "bpf: introduce bpf_perf_event_output() helper"
    _helper(ProgType.KPROBE, Helper.PERF_EVENT_OUTPUT, "records to perf rings", (4, 4)),
    # 457f44363a88, as the ring buffer
    _helper(ProgType.KPROBE, Helper.RINGBUF_OUTPUT, "records to the BPF ring buffer", (5, 8)),
    CURRENT_PID_TGID,
    CURRENT_UID_GID,
    CURRENT_COMM,
    CURRENT_CGROUP_ID,
    # 2541517c32be, as kprobe programs
    _helper(ProgType.RAW_TRACEPOINT, Helper.PROBE_READ, "reading kernel memory", (4, 1)),
    # 6ae08ae3dea2 "bpf: Add probe_read_{user, kernel} and probe_read_{user, kernel}_str helpers"
    _helper(ProgType.RAW_TRACEPOINT, Helper.PROBE_READ_KERNEL, "the same, kernel only", (5, 5)),
    PERF_LINK,
    MEMCG_ACCOUNTING,
)

# What each attach family (rawtrace.attach.ladder) needs, named "attach:<family>".
ATTACH_FEATURES: tuple[FeatureProbe, ...] = (
    # e12f03d7031a "perf/core: Implement the 'perf_kprobe' PMU"
    _fact("attach", "attach:kprobe", "kprobes by perf kprobe PMU", (4, 17), _kprobe_pmu, _KPROBES),
    # 2541517c32be, with tracefs kprobe_events
    _fact(
        "attach",
        "attach:kprobe-legacy",
        "kprobes by tracefs kprobe_events",
        (4, 1),
        _kprobe_events,
        _KPROBES,
    ),
    # 98b5c2c65c29, as tracepoint programs
    _fact(
        "attach",
        "attach:tracepoint",
        "syscall tracepoints",
        (4, 7),
        _syscall_tracepoints,
        ("FTRACE_SYSCALLS",),
    ),
    # c4f6699dfcb8, as raw tracepoint programs
    _fact(
        "attach",
        "attach:raw_tracepoint",
        "raw sys_enter/sys_exit tracepoints",
        (4, 17),
        lambda: prog_type_available(ProgType.RAW_TRACEPOINT),
    ),
    # f1b9509c2fb0, as tracing programs; the kernel's BTF came in 5.4
    _fact(
        "attach",
        "attach:tp_btf",
        "BTF-typed sys_enter/sys_exit tracepoints",
        (5, 5),
        lambda: prog_type_available(ProgType.TRACING),
        ("DEBUG_INFO_BTF",),
    ),
)

_BY_NAME = {fact.name: fact for fact in (*FEATURES, *ATTACH_FEATURES)}


def feature(name: str) -> FeatureProbe:
    """The feature fact called `name` ("ringbuf", "perf_link", "attach:kprobe")."""
    try:
        return _BY_NAME[name]
    except KeyError:
        raise KeyError(f"no feature fact {name!r}; known: {', '.join(sorted(_BY_NAME))}") from None
