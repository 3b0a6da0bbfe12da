"""containerId: an event from a process in a container's cgroup carries the container's id."""

from __future__ import annotations

import os
import secrets
import subprocess
import time

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
