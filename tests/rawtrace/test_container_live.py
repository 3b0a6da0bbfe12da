"""containerId: an event from a process in a container's cgroup carries the container's id."""

from __future__ import annotations

import json
import os
import secrets
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

import rawtrace
from kernel_compat import FeatureMissing
from kernel_compat.system.cgroups import cgroup2_mountpoint
from rawtrace import Event

pytestmark = pytest.mark.live


def test_an_exec_inside_a_docker_scope_carries_its_container_id() -> None:
    try:
        hierarchy = cgroup2_mountpoint()
    except FeatureMissing as exc:
        pytest.skip(str(exc))
    container = secrets.token_hex(32)  # docker's ids: 64 hex digits, as Tracee reports them
    scope = hierarchy / f"docker-{container}.scope"  # docker's name for it under systemd
    script = f"echo $$ > {scope}/cgroup.procs && exec /bin/true in-container"
    # created after the trace starts: the decoder finds it when its id first shows up
    with rawtrace.trace("execve", follow=os.getpid()) as tracer:
        scope.mkdir()
        try:
            scope_id = os.stat(scope).st_ino
            subprocess.run(["/bin/sh", "-c", script], check=True)
            events: list[Event] = []
            deadline = time.monotonic() + 5
            while time.monotonic() < deadline and not any(
                e.arg("pathname") == "/bin/true" for e in events
            ):
                events += tracer.read(0.2)
        finally:
            scope.rmdir()
    (outside,) = [e for e in events if e.arg("argv")[:2] == ("/bin/sh", "-c")]  # type: ignore[index]
    (inside,) = [e for e in events if e.arg("argv") == ("/bin/true", "in-container")]
    assert inside.host_process_id == outside.host_process_id
    assert (outside.container_id, inside.container_id) == ("", container)
    assert inside.to_dict()["containerId"] == container
    assert inside.cgroup_id == scope_id


# Waits for a go on stdin, then vforks /bin/true twice.
WORKER = "import subprocess, sys; sys.stdin.read(); [subprocess.run(['/bin/true']) for _ in 'ab']"


def test_the_container_filter_takes_the_cgroup_a_runtime_names(tmp_path: Path) -> None:
    try:
        hierarchy = cgroup2_mountpoint()
    except FeatureMissing as exc:
        pytest.skip(str(exc))
    container = secrets.token_hex(32)
    # where docker puts a container under systemd; the slice is made where this host has none
    made = [d for d in (hierarchy / "system.slice",) if not d.exists()]
    scope = hierarchy / "system.slice" / f"docker-{container}.scope"
    workers = []
    try:
        for directory in [*made, scope]:
            directory.mkdir()
        workers = [
            subprocess.Popen([sys.executable, "-c", WORKER], stdin=subprocess.PIPE)
            for _ in range(2)
        ]
        (scope / "cgroup.procs").write_text(str(workers[0].pid))
        out = tmp_path / "events"
        tracer = subprocess.Popen(
            [sys.executable, "-m", "rawtrace", "trace", "vfork", "--json", "-o", str(out),
             f"--container={container[:12]}"],
            stderr=subprocess.PIPE,
            text=True,
        )  # fmt: skip
        assert tracer.stderr is not None
        assert "tracing vfork" in tracer.stderr.readline()
        for worker in workers:
            worker.communicate(b"")
            assert worker.returncode == 0
        tracer.send_signal(signal.SIGINT)
        _, err = tracer.communicate(timeout=60)
        assert tracer.returncode == 0, err
    finally:
        for worker in workers:
            worker.kill()
            worker.wait()
        for directory in [scope, *reversed(made)]:
            if directory.exists():
                directory.rmdir()
    events = [json.loads(line) for line in out.read_text().splitlines()]
    assert [(e["hostProcessId"], e["containerId"]) for e in events] == [
        (workers[0].pid, container)
    ] * 2
    assert "2 events, 0 lost" in err
