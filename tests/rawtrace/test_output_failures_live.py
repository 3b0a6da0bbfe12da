"""Where events go, failing: a full filesystem (a real tmpfs), /dev/full, /proc/version, paths
that cannot be files, closed stdout and stderr, `| head`, a FIFO without a reader and a pipe
nobody reads. Each ends the trace cleanly with a count of the events not written, and COMMAND
runs to its end whatever happens to the trace."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

# the outputs and the API around the trace, not the kernel: run once, on the host
pytestmark = [pytest.mark.live, pytest.mark.host_only]

ROOT = Path(__file__).resolve().parents[2]
RAWTRACE = [sys.executable, "-m", "rawtrace", "trace"]
ENV = {**os.environ, "PYTHONPATH": str(ROOT)}
EXECS = "for i in $(seq {n}); do /bin/true; done"


def _run(args: list[str], **kwargs: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*RAWTRACE, *args], env=ENV, capture_output=True, text=True, timeout=120, **kwargs
    )  # type: ignore[call-overload, no-any-return]


def _summary(stderr: str) -> str:
    return next(line for line in stderr.splitlines() if " events, " in line)


@pytest.fixture
def small_fs(tmp_path: Path) -> Iterator[Path]:
    """A tmpfs of 64 KiB: room for about 60 execve events in JSON."""
    mount = tmp_path / "small"
    mount.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(mount)], check=True)
    yield mount
    subprocess.run(["umount", str(mount)], check=True)


@pytest.mark.parametrize(("command_status", "status"), [(0, 1), (3, 3)])
def test_a_full_filesystem_ends_the_trace_counting_what_was_not_written(
    small_fs: Path, tmp_path: Path, command_status: int, status: int
) -> None:
    out, ran = small_fs / "events.json", tmp_path / "ran"
    script = f"{EXECS.format(n=300)}; touch {ran}; exit {command_status}"
    result = _run(["execve", "--json", "-o", str(out), "--", "sh", "-c", script])
    assert "Traceback" not in result.stderr
    # COMMAND ran to its end and its status is kept; 0 becomes 1, the trace being incomplete
    assert ran.exists()
    assert result.returncode == status
    lines = out.read_text().splitlines()
    assert all(json.loads(line)["eventName"] == "execve" for line in lines)  # cut to whole lines
    summary = _summary(result.stderr)
    assert summary.startswith(f"rawtrace: {len(lines)} events, 0 lost")
    unwritten = int(summary.split(", ")[-1].split(" not written")[0].rsplit(" ", 1)[-1])
    assert unwritten > 0
    assert f"not written to {out} (No space left on device (ENOSPC))" in summary
    assert "the trace is incomplete: No space left on device" in result.stderr


@pytest.mark.parametrize(
    ("path", "cause"),
    [
        ("/dev/full", "No space left on device (ENOSPC)"),
        ("/proc/version", "Input/output error (EIO)"),
    ],
)
def test_a_destination_failing_at_once_is_counted_and_command_runs(
    tmp_path: Path, path: str, cause: str
) -> None:
    ran = tmp_path / "ran"
    result = _run(["execve", "--json", "-o", path, "--", "sh", "-c", f"touch {ran}"])
    assert result.returncode == 1, result.stderr
    assert ran.exists()
    assert f"not written to {path} ({cause})" in _summary(result.stderr)
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize(
    ("path", "status", "says"),
    [
        ("", 2, "-o '' names no file"),
        ("/", 1, "cannot write events to /: Is a directory (EISDIR)"),
        ("/nonexistent/events", 1, "No such file or directory (ENOENT)"),
    ],
)
def test_a_path_that_cannot_take_events_is_refused_before_anything_is_loaded(
    path: str, status: int, says: str
) -> None:
    result = _run(["vfork", "-o", path, "--", "true"])
    assert result.returncode == status
    assert says in result.stderr
    assert result.stderr.count("\n") == 1  # no "tracing ..." line: nothing was loaded


def test_a_closed_stdout_is_refused_in_one_line() -> None:
    result = _run(["vfork", "--", "true"], preexec_fn=lambda: os.close(1))
    assert (result.returncode, result.stderr) == (
        1,
        "rawtrace: standard output is closed; give -o FILE for the events\n",
    )


def test_a_closed_stderr_keeps_status_lines_out_of_the_events() -> None:
    result = _run(
        ["execve", "--json", "--", "sh", "-c", "/bin/true"], preexec_fn=lambda: os.close(2)
    )
    assert result.returncode == 0
    events = [json.loads(line) for line in result.stdout.splitlines()]
    assert [e["eventName"] for e in events] == ["execve", "execve"]


def test_head_closing_the_pipe_is_quiet(tmp_path: Path) -> None:
    err = tmp_path / "err"
    rawtrace = " ".join(RAWTRACE)
    line = f"{rawtrace} execve --json -- sh -c '{EXECS.format(n=50)}' 2>{err} | head -1"
    result = subprocess.run(
        ["bash", "-c", line + "; exit ${PIPESTATUS[0]}"], env=ENV, capture_output=True, text=True
    )
    assert result.returncode == 0
    assert json.loads(result.stdout)["eventName"] == "execve"
    stderr = err.read_text()
    assert "Traceback" not in stderr and "incomplete" not in stderr
    assert "not written to standard output (the reader closed the pipe)" in _summary(stderr)


def _ends_soon(process: subprocess.Popen[str], signum: int) -> float:
    """Seconds from `signum` to the end of `process`."""
    sent = time.monotonic()
    process.send_signal(signum)
    process.wait(timeout=10)
    return time.monotonic() - sent


# The waits give up every 0.1 s; 1 s is the promise and idle runs take about 0.15 s.
@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_a_signal_ends_the_wait_for_a_fifos_reader(tmp_path: Path, signum: int) -> None:
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    process = subprocess.Popen(
        [*RAWTRACE, "vfork", "-o", str(fifo)], env=ENV, stderr=subprocess.PIPE, text=True
    )
    assert process.stderr is not None
    assert process.stderr.readline() == f"rawtrace: waiting for a reader of {fifo}\n"
    assert _ends_soon(process, signum) < 1
    assert process.returncode == 1
    said = process.stderr.read()
    assert said == f"rawtrace: stopped while {fifo} had no reader: nothing traced\n"
    process.stderr.close()


def test_a_signal_ends_a_trace_stalled_on_a_pipe_nobody_reads(tmp_path: Path) -> None:
    read_end, write_end = os.pipe()
    ready = tmp_path / "ready"
    script = f"touch {ready}; while :; do /bin/true; done"
    process = subprocess.Popen(
        [*RAWTRACE, "execve", "--json", "--", "sh", "-c", script],
        env=ENV,
        stdout=write_end,
        stderr=subprocess.PIPE,
        text=True,
    )
    os.close(write_end)
    try:
        while not ready.exists():
            time.sleep(0.05)
        time.sleep(2)  # a 64 KiB pipe fills with about 80 events
        os.kill(process.pid, signal.SIGTERM)  # rawtrace forwards it to COMMAND
        process.wait(timeout=5)
    finally:
        process.kill()
        os.close(read_end)
    assert process.stderr is not None
    stderr = process.stderr.read()
    process.stderr.close()
    assert process.returncode == 128 + signal.SIGTERM, stderr  # COMMAND's end, by SIGTERM
    assert "not written to standard output (stopped while the reader was not reading)" in stderr


def test_sigterm_is_forwarded_to_command_whose_status_is_kept() -> None:
    script = "trap 'exit 7' TERM; echo ready; while :; do sleep 0.1; done"
    process = subprocess.Popen(
        [*RAWTRACE, "exit", "-o", os.devnull, "--", "sh", "-c", script],
        env=ENV,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    assert process.stdout is not None
    assert process.stdout.readline() == "ready\n"
    process.stdout.close()
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=10) == 7


def test_a_second_sigterm_ends_rawtrace_and_command_runs_on(tmp_path: Path) -> None:
    pid_file = tmp_path / "pid"
    script = f"trap '' TERM; echo $$ > {pid_file}; echo ready; while :; do sleep 0.1; done"
    process = subprocess.Popen(
        [*RAWTRACE, "exit", "-o", os.devnull, "--", "sh", "-c", script],
        env=ENV,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None and process.stderr is not None
    assert process.stdout.readline() == "ready\n"
    command = int(pid_file.read_text())
    try:
        process.send_signal(signal.SIGTERM)
        time.sleep(0.5)
        assert process.poll() is None  # COMMAND ignores it, and rawtrace follows COMMAND
        assert _ends_soon(process, signal.SIGTERM) < 1
        assert process.returncode == 128 + signal.SIGTERM
        os.kill(command, 0)  # still running
    finally:
        os.kill(command, signal.SIGKILL)  # it holds stderr open: read it after
        process.stdout.close()
    assert f"sh (pid {command}) runs on" in process.stderr.read()
    process.stderr.close()


def test_command_is_found_on_path_before_the_fork() -> None:
    """No failed execve of rawtrace's own process: the first exec traced is COMMAND's."""
    path = ":".join([*(f"/nonexistent/{i}" for i in range(14)), os.environ["PATH"]])
    result = subprocess.run(
        [*RAWTRACE, "execve", "--json", "--", "sh", "-c", "exit 0"],
        env={**ENV, "PATH": path},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    events = [json.loads(line) for line in result.stdout.splitlines()]
    assert [e["returnValue"] for e in events] == [0]
