"""Exec facts from kernel memory: a vfork child that execs from string literals in a page it
never touched shows the real path and argv, in execve's event and in vfork's exec_path, under
every attach family and transport (tests/rawtrace/untouched_exec.c)."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest
from kernel_features import require_feature

import rawtrace
from rawtrace import Event
from rawtrace.attach import ladder
from rawtrace.kernel.tracefs_mount import ensure_tracefs as tracefs

pytestmark = pytest.mark.live


@pytest.fixture(scope="module")
def untouched_exec(tmp_path_factory: pytest.TempPathFactory) -> Path:
    compiler = shutil.which("gcc") or shutil.which("cc")
    if compiler is None:
        pytest.skip("no C compiler to build the exec workload (.ci/run installs gcc)")
    binary = tmp_path_factory.mktemp("exec") / "untouched_exec"
    source = Path(__file__).with_name("untouched_exec.c")
    subprocess.run([compiler, "-O1", "-o", str(binary), str(source)], check=True)
    return binary


def _run(binary: Path) -> tuple[int, int]:
    """The workload's pid and its vfork child's."""
    process = subprocess.Popen([str(binary)], stdout=subprocess.PIPE, text=True)
    out, _ = process.communicate(timeout=10)
    assert process.returncode == 0
    return process.pid, int(out)


def _collect(tracer: rawtrace.Tracer, wanted: dict[str, int]) -> dict[str, Event]:
    """The first event of each name from the pid `wanted` says, within 5 seconds."""
    found: dict[str, Event] = {}
    deadline = time.monotonic() + 5
    while len(found) < len(wanted) and time.monotonic() < deadline:
        for event in tracer.read(0.2):
            if wanted.get(event.event_name) == event.host_process_id:
                found.setdefault(event.event_name, event)
    return found


@pytest.mark.parametrize("transport", ["ringbuf", "perf"])
@pytest.mark.parametrize("family", [rung.name for rung in ladder.LADDER])
def test_untouched_literal_exec_reports_its_path(
    untouched_exec: Path, family: str, transport: str
) -> None:
    require_feature(f"attach:{family}")
    with rawtrace.trace("execve,vfork", attach=family, transport=transport) as tracer:
        parent, child = _run(untouched_exec)
        found = _collect(tracer, {"vfork": parent, "execve": child})
    assert found["execve"].return_value == 0
    assert found["execve"].arg("pathname") == "/bin/true"
    assert found["execve"].arg("argv") == ("true", "untouched-arg")
    assert found["execve"].arg("truncated") is False
    assert found["vfork"].return_value == child
    assert found["vfork"].arg("released_by") == "execve"
    # The exec wakes the parent when it drops the old memory: sched_prepare_exec (6.10) fires
    # before that, sched_process_exec after, so before 6.10 a parent that returns at once may
    # find the path still unread: unavailable then, never "" (vfork_watch._exec_tracepoint).
    exact = (tracefs() / "events/sched/sched_prepare_exec").is_dir()
    assert found["vfork"].arg("exec_path") in (("/bin/true",) if exact else ("/bin/true", None))


def test_sched_process_exec_event_has_the_kernels_path_and_argv(untouched_exec: Path) -> None:
    with rawtrace.trace("sched_process_exec") as tracer:
        _, child = _run(untouched_exec)
        found = _collect(tracer, {"sched_process_exec": child})
    event = found["sched_process_exec"]
    assert (event.event_id, event.syscall, event.return_value) == (715, "", 0)
    assert event.arg("cmdpath") == "/bin/true"
    assert event.arg("argv") == ("true", "untouched-arg")
    assert (event.arg("pathname"), event.arg("truncated")) == (None, False)
    assert event.process_name == "true"


def test_sched_process_exec_honours_the_pid_filter(untouched_exec: Path) -> None:
    # a pid that is not the workload's: its exec is not sent
    with rawtrace.trace("sched_process_exec", pid=os.getpid()) as tracer:
        _, child = _run(untouched_exec)
        found = _collect(tracer, {"sched_process_exec": child})
    assert found == {}
