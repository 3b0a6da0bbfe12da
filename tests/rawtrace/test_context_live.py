"""The event context that the task walk reads through BTF: parents and namespaces."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

import rawtrace
from kernel_compat import FeatureMissing, vmlinux_btf_path

pytestmark = pytest.mark.live


@pytest.fixture(autouse=True)
def _needs_btf() -> None:
    try:
        vmlinux_btf_path()
    except FeatureMissing:
        pytest.skip("this kernel has no BTF (CONFIG_DEBUG_INFO_BTF): the context stays 0")


def _ns_inode(kind: str) -> int:
    return os.stat(f"/proc/self/ns/{kind}").st_ino


def test_parent_and_namespaces_of_the_caller() -> None:
    with rawtrace.trace("vfork", pid=os.getpid()) as tracer:
        child = subprocess.Popen(["true"])
        child.wait()
        events = tracer.read(1.0)
    assert len(events) == 1
    event = events[0]
    assert (event.host_parent_process_id, event.parent_process_id) == (os.getppid(),) * 2
    assert (event.process_id, event.thread_id) == (os.getpid(), os.getpid())
    assert event.mount_namespace == _ns_inode("mnt")
    assert event.pid_namespace == _ns_inode("pid")


def test_namespace_local_pids_in_a_new_pid_namespace() -> None:
    script = "import subprocess; subprocess.run(['true'])"
    with rawtrace.trace("vfork") as tracer:
        unshare = subprocess.Popen(["unshare", "--pid", "--fork", sys.executable, "-c", script])
        unshare.wait()
        events = [e for e in tracer.read(1.0) if e.host_parent_process_id == unshare.pid]
    assert unshare.returncode == 0
    assert len(events) == 1
    inner = events[0]
    assert (inner.process_id, inner.thread_id) == (1, 1)  # the first process of its namespace
    assert inner.host_process_id not in (1, unshare.pid)
    assert inner.parent_process_id == 0  # unshare lives outside: invisible from inside
    assert inner.pid_namespace != _ns_inode("pid")
    assert inner.mount_namespace == _ns_inode("mnt")
