"""Events declared through the public API: traced like the built-in ones, with their filters,
through every transport and attach family that can feed them."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from kernel_features import expect_feature, require_feature

import rawtrace
from kernel_compat import read_tracepoint_format
from rawtrace.attach import ladder
from rawtrace.kernel.tracefs_mount import ensure_tracefs

pytestmark = pytest.mark.live


def _read_until(
    tracer: rawtrace.Tracer, wanted: Callable[[rawtrace.Event], bool]
) -> list[rawtrace.Event]:
    """The wanted events of the first read that has some, within 10 seconds."""
    deadline = time.monotonic() + 10
    found: list[rawtrace.Event] = []
    while not found and time.monotonic() < deadline:
        found = [e for e in tracer.read(0.5) if wanted(e)]
    return found


def test_a_kill_declared_in_a_few_lines_is_traced_with_its_pid_and_signal() -> None:
    victim = subprocess.Popen(["sleep", "30"])
    # the user code, from rawtrace.__all__ alone:
    from rawtrace import syscall_event, trace

    kill = syscall_event("kill", args=[("pid", "pid_t"), ("sig", "int")])
    with trace(kill, pid=os.getpid()) as tracer:
        os.kill(victim.pid, signal.SIGTERM)
        for _ in range(20):
            events = [e for e in tracer.read(0.5) if e.arg("pid") == victim.pid]
            if events:
                break
    # end of the user code: 9 lines
    victim.wait()
    [event] = events
    assert (event.event_name, event.event_id, event.syscall) == ("kill", 62, "kill")
    assert (event.arg("sig"), event.return_value) == (signal.SIGTERM, 0)
    assert event.process_id == event.host_process_id == os.getpid()


def test_the_pid_filter_keeps_other_processes_kills_out() -> None:
    kill = rawtrace.syscall_event("kill", args=[("pid", "pid_t"), ("sig", "int")])
    with rawtrace.trace(kill, pid=os.getpid()) as tracer:
        subprocess.run(["sh", "-c", "kill -0 $$"], check=True)  # a kill from another process
        os.kill(os.getpid(), 0)
        seen = _read_until(tracer, lambda e: e.event_name == "kill")
    assert {e.host_process_id for e in seen} == {os.getpid()}
    assert [(e.arg("pid"), e.arg("sig")) for e in seen] == [(os.getpid(), 0)]


@pytest.mark.parametrize("transport", ["ringbuf", "perf"])
@pytest.mark.parametrize("family", [rung.name for rung in ladder.LADDER])
def test_a_declared_string_arg_through_every_family_and_transport(
    family: str, transport: str, tmp_path: Path
) -> None:
    require_feature(f"attach:{family}")
    openat = rawtrace.syscall_event("openat", args=[("dirfd", "int"), ("pathname", "const char*")])
    path = str(tmp_path / "declared")
    with rawtrace.trace(openat, pid=os.getpid(), attach=family, transport=transport) as tracer:
        fd = os.open(path, os.O_CREAT | os.O_WRONLY, 0o600)
        found = _read_until(tracer, lambda e: e.arg("pathname") == path)
    os.close(fd)
    [event] = found
    assert (event.arg("dirfd"), event.return_value, event.arg("truncated")) == (-100, fd, False)


def test_a_declared_tracepoint_event_has_the_tracepoints_fields() -> None:
    generate = rawtrace.tracepoint_event("signal:signal_generate")
    names = [arg.name for arg in generate.args]
    assert names == ["sig", "errno", "code", "comm", "pid", "group", "result"][: len(names)]
    victim = subprocess.Popen(["sleep", "30"])
    with rawtrace.trace(generate, pid=os.getpid()) as tracer:
        os.kill(victim.pid, signal.SIGUSR1)
        [event] = _read_until(tracer, lambda e: e.arg("pid") == victim.pid)
    victim.wait()
    assert (event.event_name, event.syscall, event.host_process_id) == (
        "signal_generate",
        "",
        os.getpid(),
    )
    assert (event.arg("sig"), event.arg("comm")) == (signal.SIGUSR1, "sleep")
    assert event.event_id > 60_000


def test_a_declared_tracepoint_events_data_loc_string() -> None:
    fork = rawtrace.tracepoint_event("sched:sched_process_fork")
    with rawtrace.trace(fork, pid=os.getpid()) as tracer:
        child = subprocess.Popen(["true"])
        [event] = _read_until(tracer, lambda e: e.arg("child_pid") == child.pid)
    child.wait()
    assert event.arg("parent_pid") == os.getpid()
    assert event.arg("parent_comm") == event.process_name
    # comms are __data_loc strings on newer kernels, char[16] on older ones (6.1): only a
    # __data_loc string can be cut, and only then does the event carry `truncated`
    layout = read_tracepoint_format(ensure_tracefs(), "sched", "sched_process_fork")
    if layout.field("parent_comm").type.startswith("__data_loc"):
        assert event.arg("truncated") is False
    else:
        assert "truncated" not in [arg.name for arg in event.args]


def test_an_unknown_tracepoint_is_refused_with_the_fix() -> None:
    with pytest.raises(rawtrace.RawtraceError, match="available_events"):
        rawtrace.tracepoint_event("sched:no_such_tracepoint")


def test_a_declared_kprobe_event_reads_a_kernel_functions_args() -> None:
    require_feature("attach:kprobe")
    # do_sys_openat2(int dfd, const char __user *filename, struct open_how *how): a user string,
    # so only the number of the pointer is asked for here; dfd is the int
    openat2 = rawtrace.kprobe_event("do_sys_openat2", args=[("dfd", "int"), ("filename", "void*")])
    with rawtrace.trace(openat2, pid=os.getpid()) as tracer:
        fd = os.open("/", os.O_RDONLY)
        found = _read_until(tracer, lambda e: e.event_name == "do_sys_openat2")
    os.close(fd)
    assert found and found[0].arg("dfd") == -100
    assert found[0].host_process_id == os.getpid() and found[0].syscall == ""


def test_a_kprobe_event_is_refused_in_one_line_where_kprobes_are_missing() -> None:
    if expect_feature("attach:kprobe"):
        pytest.skip("this kernel has kprobes")
    probe = rawtrace.kprobe_event("do_sys_openat2", args=[("dfd", "int")])
    with pytest.raises(rawtrace.KernelFeatureMissing) as caught, rawtrace.trace(probe):
        pass
    assert "CONFIG_KPROBES" in str(caught.value) and "\n" not in caught.value.args[0]
