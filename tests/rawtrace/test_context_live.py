"""The event context that the task walk reads through BTF: parents and namespaces."""

from __future__ import annotations

import os
import subprocess
import sys
import threading

import pytest

import rawtrace
import rawtrace.session
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


def test_a_call_from_a_thread_names_its_process_and_its_thread() -> None:
    # A caller that is not its process's first thread, and a child whose parent is that thread:
    # the programs read a thread's own pid from task_struct.thread_pid, its process's from
    # group_leader, the parent's tgid (not its pid) from real_parent. In a one-thread process
    # each of these reads gives the same number whichever field it reads; here each differs.
    inner = "import subprocess; subprocess.run(['true'])"
    script = (
        "import subprocess, sys, threading\n"
        "tids = []\n"
        "def spawn():\n"
        "    tids.append(threading.get_native_id())\n"
        f"    subprocess.run([sys.executable, '-c', {inner!r}])\n"
        "thread = threading.Thread(target=spawn)\n"
        "thread.start(); thread.join()\n"
        "print(tids[0], flush=True)\n"
    )
    with rawtrace.trace("vfork") as tracer:
        caller = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
        out, _ = caller.communicate()
        events = tracer.read(1.0)
    assert caller.returncode == 0
    tid = int(out)
    assert tid != caller.pid
    (outer,) = [e for e in events if e.host_process_id == caller.pid]
    assert (outer.host_thread_id, outer.thread_id) == (tid, tid)
    assert outer.process_id == caller.pid
    assert (outer.host_parent_process_id, outer.parent_process_id) == (os.getpid(), os.getpid())
    (child,) = [e for e in events if e.host_process_id == outer.arg("pid")]
    # its parent is the thread, whose process is the caller
    assert (child.host_parent_process_id, child.parent_process_id) == (caller.pid, caller.pid)


def test_without_btf_the_context_is_the_hosts_and_exit_comes_from_exit_group(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The path of a kernel without BTF, on this one: no task layout, so the programs skip the
    # task walk, exit is fed by exit_group(), and the decoder has no task context to read
    monkeypatch.setattr(rawtrace.session, "task_layout", lambda: None)
    with rawtrace.trace("vfork,exit", follow=os.getpid()) as tracer:
        child = subprocess.Popen(["/bin/sh", "-c", "exit 7"])
        child.wait()
        events = tracer.read(1.0)
    (vfork,) = [e for e in events if e.event_name == "vfork"]
    (exit_,) = [e for e in events if e.event_name == "exit"]
    assert vfork.arg("pid") == child.pid == exit_.host_process_id
    assert (vfork.process_id, vfork.thread_id) == (os.getpid(), threading.get_native_id())
    assert (vfork.parent_process_id, vfork.host_parent_process_id) == (0, 0)
    assert (vfork.mount_namespace, vfork.pid_namespace) == (0, 0)
    assert exit_.process_id == child.pid
    assert exit_.syscall == "exit_group"
    assert exit_.arg("exit_code") == 7
