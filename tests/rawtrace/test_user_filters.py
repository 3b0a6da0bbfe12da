"""Filters applied in user space, on constructed events: each kind compares what the kernel's
filter compares, kinds AND together, values OR."""

from __future__ import annotations

import re
from operator import attrgetter

import pytest

from bpf_bytecode.programs.filters import Filters
from rawtrace import Arg, Event, KernelFeatureMissing, RawtraceError, Tracer
from rawtrace.filters.placing import FilterKind, Place, place, split_filters
from rawtrace.kernel.feature_probes import FeatureProbe


def event(pid: int, tid: int, uid: int, comm: str, cgroup: int) -> Event:
    return Event(
        1,
        0,
        0,
        7,
        8,
        pid,
        tid,
        uid,
        comm,
        cgroup,
        58,
        "vfork",
        "vfork",
        9,
        (Arg("pid", "pid_t", 9),),
    )


def test_forced_into_user_space_the_kinds_leave_the_programs() -> None:
    filters = Filters(
        pids=(10, 11), tids=(12,), uids=(0,), comms=(b"sh",), cgroups=(5,), followed_fd=3
    )
    kernel, user = split_filters(filters, "user")
    assert kernel == Filters(followed_fd=3)  # a followed tree stays in the kernel
    assert user.kinds == ("pid", "tid", "uid", "comm", "cgroup")
    passes = event(10, 12, 0, "sh", 5)
    # pids compare the host's ids (processId is 7 in every event here), names as decoded
    others = [
        event(12, 12, 0, "sh", 5),
        event(11, 13, 0, "sh", 5),
        event(11, 12, 1, "sh", 5),
        event(11, 12, 0, "bash", 5),
        event(11, 12, 0, "sh", 6),
    ]
    assert user([passes, *others, passes]) == [passes, passes]


def test_no_filters_nothing_in_user_space() -> None:
    kernel, user = split_filters(Filters(), "user")
    assert (kernel, user.kinds) == (Filters(), ())


def test_an_unknown_place_is_refused_before_anything_is_made() -> None:
    with pytest.raises(RawtraceError, match="unknown filters_in 'gpu'; choose one of auto"):
        Tracer("vfork", filters_in="gpu")


def test_a_kind_whose_helper_is_missing_goes_to_user_space_unless_forced() -> None:
    missing = FeatureProbe("helper", "kprobe:bpf_new", "a helper of 9.9 (9.9)", lambda: False)
    kind = FilterKind("new", "pids", missing, attrgetter("host_process_id"))
    why = "no kprobe:bpf_new in this kernel: a helper of 9.9 (9.9)"
    assert place(kind, "auto") == Place("new", "user space", why)
    assert place(kind, "user") == Place("new", "user space", "forced (filters_in=user)")
    with pytest.raises(KernelFeatureMissing, match=re.escape(f"on new in the kernel: {why}; let")):
        place(kind, "kernel")
    present = FeatureProbe("helper", "kprobe:bpf_old", "an old helper (4.2)", lambda: True)
    assert place(FilterKind("old", "pids", present, kind.field), "auto") == Place("old", "kernel")
