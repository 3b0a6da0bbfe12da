"""The process lifecycle events (fork, clone, clone3, execve, execveat, exit) through every attach
family: a workload with known pids, paths, argv and exit codes."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time

import pytest
from kernel_features import require_feature

import rawtrace
from bpf_bytecode.programs.capture import ARG_SIZE, ARGV_MAX
from rawtrace import Event
from rawtrace.attach import ladder

pytestmark = pytest.mark.live

EVENTS = "fork,clone,clone3,execve,execveat,exit"
AT_EMPTY_PATH = 0x1000


def _require(family: str) -> None:
    require_feature(f"attach:{family}")


def _fork_and(child: object) -> int:
    """fork (glibc: the clone syscall); the child runs `child()` and never returns."""
    pid = os.fork()
    if pid == 0:
        try:
            child()  # type: ignore[operator]
        finally:
            os._exit(99)
    os.waitpid(pid, 0)
    return pid


def _collect(tracer: rawtrace.Tracer, done: object) -> list[Event]:
    events: list[Event] = []
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        events += tracer.read(0.2)
        if done(events):  # type: ignore[operator]
            break
    return events


@pytest.mark.parametrize("family", [rung.name for rung in ladder.LADDER])
def test_lifecycle_of_known_processes(family: str) -> None:
    _require(family)
    me = os.getpid()
    long_arg = "x" * 300
    many = [f"a{i}" for i in range(ARGV_MAX + 4)]
    with rawtrace.trace(EVENTS, attach=family) as tracer:
        shell = subprocess.run(["/bin/sh", "-c", "exit 7"], check=False)
        exited_5 = _fork_and(lambda: os._exit(5))
        missing = _fork_and(lambda: os.execv("/nonexistent/rawtrace", ["nope", "1"]))
        cut = _fork_and(lambda: os.execv("/bin/true", ["/bin/true", long_arg, *many]))
        not_a_program = os.open("/dev/null", os.O_RDONLY)
        fd_exec = _fork_and(lambda: os.execve(not_a_program, ["true", "fd"], {}))  # EACCES
        os.close(not_a_program)
        a_program = os.open("/bin/true", os.O_RDONLY)
        fd_true = _fork_and(lambda: os.execve(a_program, ["true", "at"], {}))
        os.close(a_program)
        thread_ids: list[int] = []
        thread = threading.Thread(target=lambda: thread_ids.append(threading.get_native_id()))
        thread.start()
        thread.join()
        raw_fork = subprocess.run(
            [
                sys.executable,
                "-c",
                "import ctypes; libc = ctypes.CDLL(None); pid = libc.syscall(57)\n"
                "if pid == 0: libc._exit(0)\n"
                "print(pid, flush=True)",
            ],
            capture_output=True,
            text=True,
            check=True,
        )
        forked = int(raw_fork.stdout)
        events = _collect(tracer, lambda evs: any(e.host_process_id == forked for e in evs))
    assert shell.returncode == 7

    def only(name: str, pid: int, **args: object) -> Event:
        found = [
            e
            for e in events
            if e.event_name == name
            and e.host_process_id == pid
            and all(e.arg(k) == v for k, v in args.items())
        ]
        assert len(found) == 1, (name, pid, args, found)
        return found[0]

    # the shell: exec'd by a child of ours, exit 7
    shell_exec = [e for e in events if e.event_name == "execve" and e.arg("pathname") == "/bin/sh"]
    assert len(shell_exec) == 1
    child = shell_exec[0].host_process_id
    assert shell_exec[0].host_parent_process_id == me
    assert shell_exec[0].arg("argv") == ("/bin/sh", "-c", "exit 7")
    assert shell_exec[0].return_value == 0
    assert only("exit", child).arg("exit_code") == 7
    # a fork through glibc is clone; the parent's return carries the child's pid
    clones = [e for e in events if e.event_name == "clone" and e.host_process_id == me]
    assert {e.return_value for e in clones} >= {exited_5, missing, cut, fd_exec}
    assert all(e.call_start and e.call_start <= e.timestamp for e in clones)
    assert only("exit", exited_5).arg("exit_code") == 5
    # a failed exec: -ENOENT, with what was asked for
    failed = only("execve", missing)
    assert (failed.return_value, failed.arg("pathname")) == (-2, "/nonexistent/rawtrace")
    assert (failed.arg("argv"), failed.arg("truncated")) == (("nope", "1"), False)
    # truncation: the long string cut to its slot, argv to ARGV_MAX strings, and marked
    truncated = only("execve", cut)
    argv = truncated.arg("argv")
    assert isinstance(argv, tuple) and len(argv) == ARGV_MAX
    assert argv[:3] == ("/bin/true", "x" * (ARG_SIZE - 1), "a0")
    assert truncated.arg("truncated") is True
    # fexecve is execveat(fd, "", argv, envp, AT_EMPTY_PATH). A successful one returns as
    # execve on x86_64's syscall tracepoints: it must still come as execveat, and only once.
    at = only("execveat", fd_exec)
    # fexecve's "" is a libc literal: its page may be one the child never touched, which the
    # entry cannot read, and a failed exec has no kernel copy to take instead (unavailable)
    assert at.arg("dirfd") == not_a_program and at.arg("pathname") in ("", None)
    assert (at.arg("argv"), at.arg("flags"), at.return_value) == (("true", "fd"), 4096, -13)
    ran = only("execveat", fd_true)
    assert (ran.arg("argv"), ran.return_value) == (("true", "at"), 0)
    # "" as passed, or where the entry could not read it the kernel's name for the fd's file
    path = ran.arg("pathname")
    assert path == "" or (isinstance(path, str) and path.startswith("/dev/fd/")), path
    assert not [e for e in events if e.event_name == "execve" and e.host_process_id == fd_true]
    # a thread: clone3 (glibc 2.34+) or clone; either way the thread's id is returned
    spawned = [e for e in events if e.event_name in ("clone", "clone3") and e.host_process_id == me]
    assert thread_ids[0] in {e.return_value for e in spawned}
    # the fork syscall itself: the parent's return only, never the child's 0
    forks = [e for e in events if e.event_name == "fork" and e.host_parent_process_id == me]
    assert [e.return_value for e in forks] == [forked]
