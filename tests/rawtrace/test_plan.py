"""TracePlan: every option checked once, for the CLI and the API, without root or the kernel."""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys

import pytest

from rawtrace import RawtraceError, Tracer
from rawtrace.plan import TracePlan


def test_a_plan_holds_what_was_asked() -> None:
    plan = TracePlan.build(
        "vfork,exit", pid=[10, 11], comm="sh", stall_ms=50, attach="tracepoint", pages=4
    )
    assert [spec.name for spec in plan.events] == ["vfork", "exit", "vfork_stall"]
    assert (plan.filters.pids, plan.filters.comms) == ((10, 11), (b"sh",))
    assert (plan.stall_ms, plan.attach, plan.pages, plan.transport) == (50, "tracepoint", 4, "auto")
    assert plan.holds
    with pytest.raises(dataclasses.FrozenInstanceError):
        plan.pages = 8  # type: ignore[misc]


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"events": "nosuch"}, "unknown event 'nosuch'"),
        ({"attach": "fentry"}, "unknown attach mode 'fentry'"),
        ({"transport": "pipe"}, "unknown transport 'pipe'"),
        ({"filters_in": "gpu"}, "unknown filters_in 'gpu'"),
        ({"stall_ms": 0.0}, r"stall_ms \(--stall-ms\) 0.0 is no threshold"),
        ({"stall_ms": float("nan")}, r"stall_ms \(--stall-ms\) nan is no threshold"),
        ({"events": "exit", "stall_ms": 10.0}, "none of them is traced"),
        ({"gpu": 1}, "unknown filter 'gpu'"),
        ({"comm": "x" * 16}, "can be no process's name"),
    ],
)
def test_a_bad_option_is_refused_with_its_name(options: dict[str, object], message: str) -> None:
    with pytest.raises(RawtraceError, match=message):
        TracePlan.build(**options)  # type: ignore[arg-type]


def test_the_api_builds_the_same_plan() -> None:
    tracer = Tracer("vfork", pid=7, attach="raw_tracepoint")
    assert tracer.plan == TracePlan.build("vfork", pid=7, attach="raw_tracepoint")
    with pytest.raises(RawtraceError, match="options given beside a TracePlan: pid"):
        Tracer(tracer.plan, pid=8)


def test_a_plan_needs_no_root() -> None:
    """Built by an unprivileged process: no capability, no kernel object. (Python lives under
    /root here, so privileges go after the imports.)"""
    script = (
        "import os\n"
        "from rawtrace.plan import TracePlan\n"
        "os.setgroups([]); os.setgid(65534); os.setuid(65534)\n"
        "plan = TracePlan.build('vfork,execve', uid=0, follow=1)\n"
        "print(len(plan.events), plan.filters.uids, plan.follow)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        timeout=120,  # a QEMU guest starts Python in seconds
        cwd=os.getcwd(),
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout == "2 (0,) 1\n"
