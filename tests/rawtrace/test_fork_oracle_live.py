"""rawtrace's fork-like events against an oracle: the kernel's proc connector (through pyroute2's
ProcEventSocket), which reports every task the kernel creates, from copy_process() itself.

Both sides are cut to one workload's tree: the tasks that the workload's root and its
descendants create. Threads count as well as processes: each task created is one fork-like
call's return (fork, vfork, clone, clone3), whichever it was. The tree itself is the
connector's: a new process joins it when its creator is in it. The connector names a new
thread's creator by the thread's tgid (its parent fields are the process's parent's).
"""

from __future__ import annotations

import os
import select
import socket
import subprocess
import sys
import time
from typing import Any

import pytest

import rawtrace
from kernel_compat import kernel_release
from rawtrace import Event

pytestmark = pytest.mark.live

pyroute2 = pytest.importorskip("pyroute2")
from pyroute2.netlink import NLMSG_DONE  # noqa: E402
from pyroute2.netlink.connector.cn_proc import (  # noqa: E402
    CN_IDX_PROC,
    CN_VAL_PROC,
    PROC_CN_MCAST_LISTEN,
    proc_event_control,
)


class _ListenFor(proc_event_control):  # type: ignore[misc]
    """PROC_CN_MCAST_LISTEN with a struct proc_input: the op, then the event types wanted."""

    fields = (*proc_event_control.fields, ("event_type", "I"))
    SIZE = 8


FORK_EVENTS = "fork,vfork,clone,clone3"
PROC_EVENT_FORK = 1
LISTEN_OP_SIZE = 4  # before 6.6 the request is the op alone: an enum proc_cn_mcast_op
SO_RCVBUFFORCE = 33  # <asm-generic/socket.h>; root may pass net.core.rmem_max
RECEIVE_BUFFER = 64 << 20  # holds every fork of a busy host while the workload runs
DATAGRAM_SIZE = 1 << 16
SENTINEL_WAIT = 30  # seconds: a bound on a connector that stays silent, not a timing
# The inode numbers of the initial namespaces (PROC_USER_INIT_INO, PROC_PID_INIT_INO)
INITIAL_NAMESPACES = {"user": 0xEFFFFFFD, "pid": 0xEFFFFFFC}

WORKLOAD = """
import ctypes, os, subprocess, threading
subprocess.run(["/bin/sh", "-c", "true | cat | cat > /dev/null; (true &); wait"], check=True)
subprocess.run(["true"], check=True)  # vfork
pid = os.fork()  # clone
if pid == 0:
    os._exit(0)
os.waitpid(pid, 0)
pid = os.posix_spawn("/bin/true", ["true"], {})  # clone3 (or clone), CLONE_VFORK
os.waitpid(pid, 0)
thread = threading.Thread(target=lambda: None)  # clone3 (or clone), a thread
thread.start()
thread.join()
libc = ctypes.CDLL(None)
pid = libc.syscall(57)  # the fork syscall itself
if pid == 0:
    libc._exit(0)
os.waitpid(pid, 0)
"""


def _outside_initial_namespaces() -> list[str]:
    """The namespaces of ours that the connector ignores a listener in (cn_proc_mcast_ctl
    drops the request without an answer: its events carry the initial namespaces' pids)."""
    return [
        name
        for name, inode in INITIAL_NAMESPACES.items()
        if os.stat(f"/proc/self/ns/{name}").st_ino != inode
    ]


def _listen_to_forks(sock: Any) -> None:
    """Ask for events; since 6.6 (commit 2aa1f7a1f47c) for fork events only, which a busy
    host makes three times fewer of than events of all kinds. The connector handles the
    request within the send, so no answer is awaited: the sentinel shows that events flow."""
    if kernel_release().at_least(6, 6):
        message = _ListenFor()
        message["len"], message["event_type"] = _ListenFor.SIZE, PROC_EVENT_FORK
    else:
        message = proc_event_control()
        message["len"] = LISTEN_OP_SIZE
    message["idx"], message["val"], message["action"] = (
        CN_IDX_PROC,
        CN_VAL_PROC,
        PROC_CN_MCAST_LISTEN,
    )
    sock.put(message, NLMSG_DONE, msg_flags=0, msg_seq=0)


class _Connector:
    """The proc connector's fork events, (parent tgid, child pid, child tgid), read through
    pyroute2's ProcEventSocket: its socket, its listen request and its decoder. Datagrams
    wait in the socket's receive buffer while the workload runs; forks() then reads them with
    recv() itself, not pyroute2's get(), which hands over one datagram a call and keeps the
    rest in a queue of its own. Every wait is bounded."""

    def __init__(self) -> None:
        self._sock = pyroute2.ProcEventSocket()

    def __enter__(self) -> _Connector:
        outside = _outside_initial_namespaces()
        if outside:
            self._sock.close()
            pytest.skip(
                f"the proc connector ignores listeners outside the initial {outside} namespaces"
            )
        try:
            self._sock.setsockopt(socket.SOL_SOCKET, SO_RCVBUFFORCE, RECEIVE_BUFFER)
            self._sock.bind()
            _listen_to_forks(self._sock)
        except OSError as exc:
            self._sock.close()
            pytest.skip(f"no proc connector (CONFIG_PROC_EVENTS): {exc}")
        except BaseException:
            self._sock.close()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self._sock.close()

    def forks(self) -> list[tuple[int, int, int]]:
        """Every fork reported so far: reads up to a sentinel forked now, since the connector
        delivers in order."""
        sentinel = os.fork()
        if sentinel == 0:
            os._exit(0)
        os.waitpid(sentinel, 0)
        forks = []
        deadline = time.monotonic() + SENTINEL_WAIT
        while select.select([self._sock], [], [], max(0, deadline - time.monotonic()))[0]:
            try:
                datagram = self._sock.recv(DATAGRAM_SIZE)
            except BlockingIOError:
                continue
            except OSError as exc:  # ENOBUFS: the connector dropped messages
                pytest.fail(f"the proc connector lost messages, so it is no oracle: {exc}")
            for message in self._sock.marshal.parse(datagram):
                if message["what"] != PROC_EVENT_FORK:
                    continue
                forks.append((message["parent_tgid"], message["child_pid"], message["child_tgid"]))
                if message["child_pid"] == sentinel:
                    return forks
        pytest.fail(f"the proc connector reported no sentinel fork in {SENTINEL_WAIT} s")


def _tree_children(forks: list[tuple[int, int, int]], root: int) -> set[int]:
    """The tasks created by `root`'s tree, in the connector's order."""
    tree, created = {root}, set()
    for parent_tgid, child_pid, child_tgid in forks:
        if child_pid == child_tgid and parent_tgid in tree:  # a process
            tree.add(child_pid)
            created.add(child_pid)
        elif child_pid != child_tgid and child_tgid in tree:  # a thread of a process in it
            created.add(child_pid)
    return created


def test_every_task_the_workload_creates_matches_the_proc_connector() -> None:
    with _Connector() as connector, rawtrace.trace(FORK_EVENTS, follow=os.getpid()) as tracer:
        root = subprocess.Popen([sys.executable, "-c", WORKLOAD])
        assert root.wait() == 0
        forks = connector.forks()
        expected = _tree_children(forks, root.pid)
        tree = {root.pid} | {c for p, c, t in forks if c == t and c in expected}
        events: list[Event] = []
        seen: set[int] = set()
        deadline = time.monotonic() + 5
        while not seen >= expected and time.monotonic() < deadline:
            events += tracer.read(0.2)
            seen = {e.return_value for e in events if e.host_process_id in tree}
        lost = tracer.stats().lost
    print(f"proc connector: {len(expected)} tasks created; rawtrace: {len(seen)}")
    assert lost == 0
    assert len(expected) >= 10
    assert seen == expected
