"""Refusals by the running kernel, each named for its real cause: kernel.unprivileged_bpf_disabled
and kernel.perf_event_paranoid (for a process without the capabilities that lift them), and
RLIMIT_MEMLOCK before 5.11. Lockdown cannot be lowered once raised, so it is tested only on
fake settings (test_privileges.py).

A sysctl a test needs raised is raised for the test and put back after it. The tests never write
1 to unprivileged_bpf_disabled: that value cannot be changed until reboot.
"""

from __future__ import annotations

import json
import resource
import shutil
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from rawtrace.kernel.privileges import bpf_memory_charged_to_memcg

pytestmark = pytest.mark.live

SYSCTLS = Path("/proc/sys/kernel")
# Python lives under /root here: the scripts drop privileges after their imports.
DROP_TO_NOBODY = "os.setgroups([]); os.setgid(65534); os.setuid(65534)"


@contextmanager
def raised_sysctl(name: str, at_least: int, value: int) -> Iterator[int]:
    """kernel.`name` as it is if at least `at_least`, else `value` until the block ends; the
    value in force."""
    path = SYSCTLS / name
    before = int(path.read_text())
    if before >= at_least:
        yield before
        return
    path.write_text(f"{value}\n")
    try:
        yield value
    finally:
        path.write_text(f"{before}\n")


def run_script(script: str, *prefix: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*prefix, sys.executable, "-c", script], capture_output=True, text=True)


def test_unprivileged_bpf_disabled_is_named_when_it_refuses_a_map() -> None:
    # An array map is one that an unprivileged process may create where the sysctl is 0.
    script = f"""
import os
from rawtrace.kernel.bpf import MapType
from rawtrace.errors import PermissionMissing
from rawtrace.kernel.maps import Map
{DROP_TO_NOBODY}
try:
    Map.create(MapType.ARRAY, key_size=4, value_size=4, max_entries=1, name="nobody")
except PermissionMissing as exc:
    print(exc)
"""
    with raised_sysctl("unprivileged_bpf_disabled", 1, 2) as value:
        result = run_script(script)
    assert result.stderr == ""
    assert result.stdout.startswith(
        "the kernel refused to create BPF map 'nobody' (ARRAY) (Operation not permitted): "
        f"kernel.unprivileged_bpf_disabled is {value}, which keeps bpf() from processes "
        "without CAP_BPF"
    )


def test_perf_event_paranoid_is_named_when_it_refuses_a_tracepoint() -> None:
    # The tracepoint's id comes from tracefs, which is root's: read before dropping privileges.
    script = f"""
import os
from kernel_compat import read_tracepoint_format
from rawtrace.attach.perf_attach import open_probe_event
from rawtrace.errors import PermissionMissing
from rawtrace.kernel.perf_event import PERF_SAMPLE_RAW, PerfType, perf_event_attr
from rawtrace.kernel.tracefs_mount import ensure_tracefs
tracepoint = read_tracepoint_format(ensure_tracefs(), "syscalls", "sys_enter_vfork")
attr = perf_event_attr(PerfType.TRACEPOINT, tracepoint.id, sample_period=1,
                       sample_type=PERF_SAMPLE_RAW, wakeup=1)
{DROP_TO_NOBODY}
try:
    open_probe_event(attr, "to attach to syscalls:sys_enter_vfork").close()
except PermissionMissing as exc:
    print(exc)
"""
    with raised_sysctl("perf_event_paranoid", 1, 2) as value:
        result = run_script(script)
    assert result.stderr == ""
    assert result.stdout.startswith(
        "the kernel refused to attach to syscalls:sys_enter_vfork (Permission denied): "
        f"kernel.perf_event_paranoid is {value}, which keeps tracepoints and system-wide perf "
        "events from processes without CAP_PERFMON"
    )


def test_a_memlock_limit_rawtrace_cannot_raise_is_named_before_5_11() -> None:
    if bpf_memory_charged_to_memcg():
        pytest.skip("BPF memory is charged to RLIMIT_MEMLOCK only before 5.11: the 5.10 VM")
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        pytest.skip("needs setpriv (util-linux) to drop CAP_SYS_RESOURCE")
    # Root without CAP_SYS_RESOURCE may lower its limit but not raise it again.
    script = """
import resource, sys, rawtrace.cli
resource.setrlimit(resource.RLIMIT_MEMLOCK, (65536, 65536))
sys.exit(rawtrace.cli.main(["trace", "vfork", "--duration", "1"]))
"""
    drop = [setpriv, "--inh-caps=-sys_resource", "--bounding-set=-sys_resource", "--"]
    result = run_script(script, *drop)
    assert result.returncode == 1, result.stderr
    assert result.stderr.count("\n") == 1
    assert result.stderr.startswith("rawtrace: the kernel refused to create BPF map")
    assert "RLIMIT_MEMLOCK, and this process's limit is 64 KiB" in result.stderr
    assert "ulimit -l unlimited" in result.stderr


def test_features_reports_the_settings_that_can_refuse_a_tracer() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "rawtrace", "features", "--json"], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
    lockdown = Path("/sys/kernel/security/lockdown")
    soft, _ = resource.getrlimit(resource.RLIMIT_MEMLOCK)  # the child inherits ours
    assert json.loads(result.stdout)["restrictions"] == {
        "lockdown": lockdown.read_text().split("[")[1].split("]")[0]
        if lockdown.exists()
        else "none",
        "unprivileged_bpf_disabled": int((SYSCTLS / "unprivileged_bpf_disabled").read_text()),
        "perf_event_paranoid": int((SYSCTLS / "perf_event_paranoid").read_text()),
        "memlock": "unlimited" if soft == resource.RLIM_INFINITY else soft,
    }
