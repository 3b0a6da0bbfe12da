"""Every attach family in the running kernel: exact pids, identical events, probe bookkeeping.

A family is skipped only where the kernel is older than the family's first release or was built
without an option it needs, read independently of rawtrace (kernel_features.require_feature); the
QEMU kernel matrix (tests/vm) runs the rest. Where the kernel should have a family, it must work.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from contextlib import ExitStack
from typing import Any

import pytest
from kernel_features import expect_feature, require_feature
from workload import spawn_true

import rawtrace
from kernel_compat import FeatureMissing, kernel_config
from kernel_compat.kprobes import read_kprobe_events
from rawtrace import Event, KernelFeatureMissing
from rawtrace.attach import ladder
from rawtrace.kernel.tracefs_mount import ensure_tracefs

pytestmark = pytest.mark.live

FAMILIES = [rung.name for rung in ladder.LADDER]
# Differ between two observations of the same call: when, and on which CPU, each probe fired.
_PER_PROBE_KEYS = ("timestamp", "callStartTime", "processorId")


def _require(family: str) -> None:
    require_feature(f"attach:{family}")


def _available() -> list[str]:
    """The families this kernel should have (rawtrace's own pre-checks are not asked)."""
    return [family for family in FAMILIES if expect_feature(f"attach:{family}")]


@pytest.mark.parametrize("family", FAMILIES)
def test_family_precheck_agrees_with_the_kernel_facts(family: str) -> None:
    """rawtrace's own pre-check refuses a family exactly where the kernel should lack it."""
    expected = expect_feature(f"attach:{family}")
    try:
        ladder.rungs(family)[0].make(ensure_tracefs())
    except KernelFeatureMissing as exc:
        assert not expected, f"{family} should work here, but: {exc.cause}"
    else:
        assert expected, f"{family} passed its pre-check on a kernel that should lack it"


def _collect(tracer: rawtrace.Tracer, wanted: int, timeout: float = 10.0) -> list[Event]:
    events: list[Event] = []
    deadline = time.monotonic() + timeout
    while len(events) < wanted and time.monotonic() < deadline:
        events += tracer.read(0.2)
    events += tracer.read(0.3)  # a duplicate or a stray child return would show up here
    return events


def _rawtrace_probes() -> list[str]:
    return [p.name for p in read_kprobe_events(ensure_tracefs()) if p.name.startswith("rawtrace_")]


@pytest.mark.parametrize("family", FAMILIES)
def test_family_captures_children_with_exact_pids_on_any_cpu(family: str) -> None:
    _require(family)
    # One perf event on cpu 0 (or one raw tracepoint) must see calls made on every CPU.
    last_cpu = max(os.sched_getaffinity(0))
    affinity = os.sched_getaffinity(0)
    with rawtrace.trace("vfork", pid=os.getpid(), attach=family) as tracer:
        assert tracer.attach_choice is not None and tracer.attach_choice.family == family
        os.sched_setaffinity(0, {last_cpu})
        try:
            pids = spawn_true(20)
        finally:
            os.sched_setaffinity(0, affinity)
        events = _collect(tracer, 20)
        stats = tracer.stats()
    assert [e.arg("pid") for e in events] == pids
    assert [e.return_value for e in events] == pids
    assert {(e.process_id, e.thread_id, e.processor_id) for e in events} == {
        (os.getpid(), os.getpid(), last_cpu)
    }
    assert all(0 < e.call_start <= e.timestamp for e in events)
    assert stats.lost == 0 and stats.undecodable == 0


def test_every_family_yields_the_same_events() -> None:
    families = _available()
    with ExitStack() as stack:
        tracers = {
            family: stack.enter_context(rawtrace.trace("vfork", pid=os.getpid(), attach=family))
            for family in families
        }
        pids = spawn_true(5)
        seen = {family: _collect(tracer, 5) for family, tracer in tracers.items()}
    assert {family: len(events) for family, events in seen.items()} == dict.fromkeys(families, 5)
    expected = [_comparable(e) for e in seen[families[0]]]
    assert [e["returnValue"] for e in expected] == pids
    for family in families[1:]:
        assert [_comparable(e) for e in seen[family]] == expected, family


def _comparable(event: Event) -> dict[str, Any]:
    fields = {k: v for k, v in event.to_dict().items() if k not in _PER_PROBE_KEYS}
    # the hold is timed by each probe too
    fields["args"] = [arg for arg in fields["args"] if arg["name"] != "hold_ns"]
    return fields


@pytest.mark.parametrize("family", ["kprobe", "kprobe-legacy"])
def test_kretprobe_storm_loses_nothing_unnoticed(family: str) -> None:
    """vfork parents hold a kretprobe instance while their child runs: many at once can run a
    probe out of them. Every call must arrive or be counted as missed."""
    _require(family)
    threads, each = 32, 4
    with rawtrace.trace("vfork", pid=os.getpid(), attach=family) as tracer:
        workers = [
            threading.Thread(target=lambda: [subprocess.run(["true"]) for _ in range(each)])
            for _ in range(threads)
        ]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join()
        events = _collect(tracer, threads * each)
        tracer.stop()
        stats = tracer.stats()
    if stats.missed is None:
        pytest.skip(f"this kernel does not report kretprobe misses ({len(events)} arrived)")
    assert len(events) + stats.missed == threads * each
    assert stats.lost == stats.missed


# vfork's entry and return, and the hooks that see what releases a vfork parent: execve and
# execveat (entry and return), exit_group and exit (entry)
_VFORK_PROBES = ["execve", "execve", "execveat", "execveat", "exit", "exit_group", "vfork", "vfork"]


def test_legacy_probes_are_removed_on_close() -> None:
    _require("kprobe-legacy")
    with rawtrace.trace("vfork", attach="kprobe-legacy"):
        ours = [name for name in _rawtrace_probes() if name.startswith(f"rawtrace_{os.getpid()}_")]
        assert sorted(name.rsplit("_sys_", 1)[1] for name in ours) == _VFORK_PROBES
    assert _rawtrace_probes() == []


def test_legacy_probes_of_a_killed_tracer_are_removed_at_the_next_start() -> None:
    _require("kprobe-legacy")
    tracer = subprocess.Popen(
        [sys.executable, "-m", "rawtrace", "trace", "vfork", "--attach", "kprobe-legacy"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert tracer.stderr is not None
    assert "tracing vfork via kprobe-legacy" in tracer.stderr.readline()
    tracer.send_signal(signal.SIGKILL)
    tracer.wait()
    tracer.stderr.close()
    left = [n for n in _rawtrace_probes() if n.startswith(f"rawtrace_{tracer.pid}_")]
    assert len(left) == len(_VFORK_PROBES)
    with rawtrace.trace("vfork", attach="kprobe-legacy"):
        assert not [n for n in _rawtrace_probes() if n.startswith(f"rawtrace_{tracer.pid}_")]
    assert _rawtrace_probes() == []


def test_forced_kprobe_without_config_kprobes_says_so() -> None:
    try:
        if kernel_config().enabled("KPROBES"):
            pytest.skip("this kernel has CONFIG_KPROBES")
    except FeatureMissing:
        pytest.skip("this kernel's config cannot be read")
    result = subprocess.run(
        [sys.executable, "-m", "rawtrace", "trace", "vfork", "--attach", "kprobe"],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 1
    assert result.stderr.startswith(
        "rawtrace: kprobes are not available: this kernel was built without CONFIG_KPROBES"
    )
    assert result.stderr.count("\n") == 1


def test_features_json_names_the_family_auto_mode_uses() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "rawtrace", "features", "--json"], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    with rawtrace.trace("vfork") as tracer:
        assert tracer.attach_choice is not None
        assert report["auto"] == tracer.attach_choice.family
    assert [row["family"] for row in report["attach"]] == FAMILIES
    available = [row["family"] for row in report["attach"] if row["available"]]
    assert available == _available()
    assert report["kernel"] == os.uname().release
