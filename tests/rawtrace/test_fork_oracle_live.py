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
import threading
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
SO_RCVBUFFORCE = 33  # <asm-generic/socket.h>; root may pass net.core.rmem_max
RECEIVE_BUFFER = 64 << 20  # the connector multicasts every fork of a busy host
SENTINEL_WAIT = 30  # seconds: a bound on a stuck reader, not a timing

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


def _listen_to_forks(sock: Any) -> None:
    """Listen; since 6.6 (commit 2aa1f7a1f47c) to fork events only, which a busy host makes
    three times fewer of than events of all kinds."""
    if not kernel_release().at_least(6, 6):
        sock.control(listen=True)
        return
    message = _ListenFor()
    message["idx"], message["val"], message["len"] = CN_IDX_PROC, CN_VAL_PROC, _ListenFor.SIZE
    message["action"], message["event_type"] = PROC_CN_MCAST_LISTEN, PROC_EVENT_FORK
    sock.put(message, NLMSG_DONE, msg_flags=0, msg_seq=0)
    tuple(sock.get(msg_seq=-1))  # the connector's acknowledgement


class _Connector:
    """The proc connector's fork events, (parent tgid, child pid, child tgid), read by a
    thread of its own from start to stop(): pyroute2's socket lives in that thread (its
    asyncio loop is the thread's), and reads on while the workload runs, so that the
    kernel's multicast of every fork on the host does not overflow it.

    stop() forks sentinels and reads up to the first one's fork: the connector delivers in
    order, so every fork before it is in. It forks another every half second until one shows:
    pyroute2 may hold messages it has already taken from the socket, the sentinel's among
    them, and only more traffic makes it hand them over (on a quiet host, a QEMU guest, none
    comes otherwise)."""

    def __init__(self) -> None:
        self.forks: list[tuple[int, int, int]] = []
        self.error: BaseException | None = None
        self._listening = threading.Event()
        self._sentinels: set[int] = set()  # forked by stop(): the reader stops at one
        self._done = threading.Event()
        self._reader = threading.Thread(target=self._read)

    def __enter__(self) -> _Connector:
        self._reader.start()
        self._listening.wait()
        if self.error is not None:
            self._reader.join()
            pytest.skip(f"no proc connector (CONFIG_PROC_EVENTS): {self.error}")
        return self

    def _read(self) -> None:
        sock = pyroute2.ProcEventSocket()
        try:
            sock.setsockopt(socket.SOL_SOCKET, SO_RCVBUFFORCE, RECEIVE_BUFFER)
            sock.bind()
            _listen_to_forks(sock)
        except OSError as exc:
            self.error = exc
        self._listening.set()
        try:
            while self.error is None and not self._done.is_set():
                ready, _, _ = select.select([sock], [], [], 0.05)
                if not ready:
                    continue
                for message in sock.get():
                    if message["what"] != PROC_EVENT_FORK:
                        continue
                    fork = (message["parent_tgid"], message["child_pid"], message["child_tgid"])
                    self.forks.append(fork)
                    if fork[1] in self._sentinels:
                        return
        except OSError as exc:  # ENOBUFS: the connector dropped messages
            self.error = exc
        finally:
            sock.close()

    def stop(self) -> None:
        deadline = time.monotonic() + SENTINEL_WAIT
        while self._reader.is_alive() and time.monotonic() < deadline:
            sentinel = os.fork()
            if sentinel == 0:
                os._exit(0)
            os.waitpid(sentinel, 0)
            self._sentinels.add(sentinel)
            self._reader.join(0.5)
        self._done.set()
        self._reader.join()
        if self.error is not None:
            pytest.fail(f"the proc connector lost messages, so it is no oracle: {self.error}")
        if not self._sentinels & {fork[1] for fork in self.forks}:
            pytest.fail(f"the proc connector reported no sentinel in {SENTINEL_WAIT} s")

    def __exit__(self, *exc: object) -> None:
        self._done.set()
        self._reader.join()


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
        connector.stop()
        expected = _tree_children(connector.forks, root.pid)
        tree = {root.pid} | {c for p, c, t in connector.forks if c == t and c in expected}
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
