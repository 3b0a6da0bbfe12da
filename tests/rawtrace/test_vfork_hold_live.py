"""vfork's hold on its parent: the hold time and what released the parent, on vfork and on
clone with CLONE_VFORK; and the stall alarm, raised while the parent still waits."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from kernel_features import require_feature

import rawtrace
from rawtrace import Event, cli
from rawtrace.attach import ladder

pytestmark = pytest.mark.live

HELD_MS = 200
# Each trace takes only the workload's calls (by its comm): other storms on the host may
# overflow the rings with theirs.
WORKLOAD = "vfork_child"
SPAWNER = "rt-spawner"


@pytest.fixture(scope="module")
def vfork_child(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """tests/rawtrace/vfork_child.c, built: Python cannot make a vfork child that waits. A guest
    with no compiler (tests/vm's arm64) is given one built for it in RAWTRACE_VFORK_CHILD."""
    prebuilt = os.environ.get("RAWTRACE_VFORK_CHILD")
    if prebuilt:
        return Path(prebuilt)
    compiler = shutil.which("cc") or shutil.which("gcc")
    if compiler is None:
        pytest.skip("no C compiler to build the vfork workload (.ci/run installs gcc)")
    binary = tmp_path_factory.mktemp("vfork") / "vfork_child"
    source = Path(__file__).with_name("vfork_child.c")
    subprocess.run([compiler, "-O1", "-o", str(binary), str(source)], check=True)
    return binary


def _events_of(tracer: rawtrace.Tracer, pid: int, name: str, timeout: float = 5.0) -> list[Event]:
    deadline = time.monotonic() + timeout
    found: list[Event] = []
    while not found and time.monotonic() < deadline:
        found = [e for e in tracer.read(0.2) if e.process_id == pid and e.event_name == name]
    return found


def _start(binary: Path, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen([str(binary), *args], stdout=subprocess.PIPE, text=True)


def _finish(process: subprocess.Popen[str]) -> int:
    """The child's pid the workload printed."""
    out, _ = process.communicate(timeout=10)
    return int(out)


def test_a_child_that_sleeps_before_exec_holds_its_parent_that_long(vfork_child: Path) -> None:
    with rawtrace.trace("vfork", comm=WORKLOAD) as tracer:
        workload = _start(vfork_child, str(HELD_MS), "exec", "/bin/true")
        child = _finish(workload)
        [event] = _events_of(tracer, workload.pid, "vfork")
    assert event.arg("pid") == child == event.return_value
    hold_ns = event.arg("hold_ns")
    assert isinstance(hold_ns, int) and hold_ns >= HELD_MS * 1_000_000
    assert hold_ns == pytest.approx(event.timestamp - event.call_start, abs=5_000_000)
    assert event.arg("released_by") == "execve"
    assert event.arg("exec_path") == "/bin/true"
    assert event.arg("exit_code") is None and event.arg("signal_code") is None


@pytest.mark.parametrize("family", [rung.name for rung in ladder.LADDER])
def test_a_child_that_exits_releases_with_its_code(vfork_child: Path, family: str) -> None:
    require_feature(f"attach:{family}")
    with rawtrace.trace("vfork", comm=WORKLOAD, attach=family) as tracer:
        workload = _start(vfork_child, "0", "exit", "7")
        child = _finish(workload)
        [event] = _events_of(tracer, workload.pid, "vfork")
    assert event.arg("pid") == child
    assert event.arg("released_by") == "exit"
    assert event.arg("exit_code") == 7
    assert event.arg("exec_path") is None and event.arg("signal_code") is None


def test_a_child_killed_by_a_signal_releases_with_the_signal(vfork_child: Path) -> None:
    with rawtrace.trace("vfork", comm=WORKLOAD) as tracer:
        workload = _start(vfork_child, "0", "signal", "15")
        child = _finish(workload)
        [event] = _events_of(tracer, workload.pid, "vfork")
    assert event.arg("pid") == child
    assert event.arg("released_by") == "signal"
    assert event.arg("signal_code") == 15
    assert event.arg("exit_code") is None


def test_a_failed_exec_then_exit_is_released_by_the_exit(vfork_child: Path) -> None:
    # execv of a missing file fails; the workload's child then _exits with 127
    with rawtrace.trace("vfork", comm=WORKLOAD) as tracer:
        workload = _start(vfork_child, "0", "exec", "/nonexistent/rawtrace")
        _finish(workload)
        [event] = _events_of(tracer, workload.pid, "vfork")
    assert (event.arg("released_by"), event.arg("exit_code")) == ("exit", 127)


def test_posix_spawn_is_a_clone_with_clone_vfork_and_the_same_hold(tmp_path: Path) -> None:
    # glibc's posix_spawn is clone3 (or clone) with CLONE_VM | CLONE_VFORK. Its child opens a
    # FIFO before the exec, which blocks until this test opens the writing end.
    fifo = tmp_path / "gate"
    os.mkfifo(fifo)
    script = (
        "import os, sys;"
        f"open('/proc/self/comm', 'w').write({SPAWNER!r});"
        "print('ready', flush=True);"
        f"pid = os.posix_spawn('/bin/true', ['true'], {{}}, file_actions="
        f"[(os.POSIX_SPAWN_OPEN, 9, {str(fifo)!r}, os.O_RDONLY, 0)]);"
        "print(pid, flush=True); os.waitpid(pid, 0)"
    )
    with rawtrace.trace("clone,clone3", comm=SPAWNER) as tracer:
        spawner = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE)
        assert spawner.stdout is not None and spawner.stdout.readline() == b"ready\n"
        time.sleep(HELD_MS / 1000)  # the hold began after the line, so it lasts longer
        with open(fifo, "w"):
            pass
        out, _ = spawner.communicate(timeout=10)
        child = int(out)
        events = [
            e
            for e in _events_of(tracer, spawner.pid, "clone3") + tracer.read(0.3)
            if e.process_id == spawner.pid and e.return_value == child
        ]
    [event] = events
    assert event.event_name in ("clone", "clone3")
    assert event.arg("vfork") is True
    hold_ns = event.arg("hold_ns")
    assert isinstance(hold_ns, int) and hold_ns >= HELD_MS * 1_000_000
    assert event.arg("released_by") == "execve"
    assert event.arg("exec_path") == "/bin/true"


def test_a_clone_without_clone_vfork_holds_nothing() -> None:
    # os.fork is clone(SIGCHLD) in glibc: no CLONE_VFORK
    with rawtrace.trace("clone,clone3", pid=os.getpid()) as tracer:
        child = os.fork()
        if child == 0:
            os._exit(0)
        os.waitpid(child, 0)
        [event] = [e for e in _events_of(tracer, os.getpid(), "clone") if e.return_value == child]
    assert event.arg("vfork") is False
    assert event.arg("hold_ns") is None and event.arg("released_by") is None


def test_the_stall_alarm_rings_while_the_child_still_holds(vfork_child: Path) -> None:
    # Idle, the alarm comes 0.31 s after the start (the 0.3 s threshold, then a read); the
    # hold lasts over ten times that, so a loaded machine still sees the alarm inside it.
    held_ms, threshold_ms = 4000, 300
    with rawtrace.trace("vfork", comm=WORKLOAD, stall_ms=threshold_ms) as tracer:
        workload = _start(vfork_child, str(held_ms), "exec", "/bin/true")
        [stall] = _events_of(tracer, workload.pid, "vfork_stall")
        # the alarm came while the parent still waits: it has printed nothing yet
        assert workload.poll() is None
        child = _finish(workload)
        [event] = _events_of(tracer, workload.pid, "vfork")
        later = [e for e in tracer.read(0.5) if e.event_name == "vfork_stall"]
    assert stall.arg("pid") == child
    assert stall.thread_id == workload.pid and stall.syscall == "vfork"
    held_ns = stall.arg("held_ns")
    assert isinstance(held_ns, int) and threshold_ms * 1_000_000 <= held_ns < held_ms * 1_000_000
    assert stall.call_start == event.call_start  # one kernel time, one conversion
    assert event.arg("hold_ns") >= held_ms * 1_000_000  # type: ignore[operator]
    assert later == []  # one alarm per hold


def test_a_stall_alarm_needs_a_holding_call() -> None:
    with pytest.raises(rawtrace.RawtraceError, match="add vfork"):
        rawtrace.trace("execve", stall_ms=100)


def test_the_command_line_reports_a_stall_before_the_call_returns(vfork_child: Path) -> None:
    result = subprocess.run(
        [
            *(sys.executable, "-m", "rawtrace", "trace", "vfork", "--json", "--stall-ms", "200"),
            *("--", str(vfork_child), "800", "exit", "3"),
        ],
        capture_output=True,
        text=True,
        timeout=120,  # under QEMU's TCG a start takes seconds
    )
    assert result.returncode == 0, result.stderr
    events = [json.loads(line) for line in result.stdout.splitlines()]
    assert [e["eventName"] for e in events] == ["vfork_stall", "vfork"]
    stall, vfork = events
    child = vfork["returnValue"]
    assert stall["args"][0] == {"name": "pid", "type": "pid_t", "value": child}
    assert stall["timestamp"] < vfork["timestamp"]
    released = {a["name"]: a["value"] for a in vfork["args"]}
    assert (released["released_by"], released["exit_code"]) == ("exit", 3)


def test_vfork_stall_can_be_named_alone_in_the_api(vfork_child: Path) -> None:
    # the holding calls are traced for it, and not delivered
    with rawtrace.trace("vfork_stall", comm=WORKLOAD, stall_ms=200) as tracer:
        workload = _start(vfork_child, "800", "exit", "3")
        [stall] = _events_of(tracer, workload.pid, "vfork_stall")
        child = _finish(workload)
        later = [e.event_name for e in tracer.read(0.5) if e.process_id == workload.pid]
    assert (stall.arg("pid"), stall.arg("threshold_ns")) == (child, 200_000_000)
    assert later == []


def test_vfork_stall_can_be_named_in_the_command_line(vfork_child: Path) -> None:
    # without --stall-ms: the default threshold, 1000 ms
    result = subprocess.run(
        [
            *(sys.executable, "-m", "rawtrace", "trace", "vfork_stall", "--json"),
            *("--", str(vfork_child), "1500", "exit", "3"),
        ],
        capture_output=True,
        text=True,
        timeout=120,  # under QEMU's TCG a start takes seconds
    )
    assert result.returncode == 0, result.stderr
    events = [json.loads(line) for line in result.stdout.splitlines()]
    assert [e["eventName"] for e in events] == ["vfork_stall"]
    assert events[0]["args"][2] == {"name": "threshold_ns", "type": "u64", "value": 1_000_000_000}


def test_the_event_list_names_the_hold_args_and_the_stall_event(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert cli.main(["trace", "--list"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert (
        "vfork (58): pid_t pid, u64 hold_ns, const char* released_by, const char* exec_path, "
        "int exit_code, int signal_code"
    ) in lines
    assert "vfork_stall (50058): pid_t pid, u64 held_ns, u64 threshold_ns" in lines
