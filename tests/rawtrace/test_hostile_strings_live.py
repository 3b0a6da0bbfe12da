"""Strings a process controls (its argv, the paths it execs, its own comm) in `--json`: every
event that carries one comes out as one line of valid JSON that gives the bytes back, however
the process chose them (quotes, backslashes, newlines, bytes that are not UTF-8, terminal
escapes), so no process can forge an event or split a line."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from kernel_compat.arch import syscall_number
from rawtrace.events.event import kernel_string

pytestmark = pytest.mark.live

ARGS = [
    b'"},{"eventName":"forged","x":"',
    b"back\\slash\\",
    b"new\nline\r",
    b"\xff\xfe \xc3",
    b"\x1b[31m\x07 \xe2\x80\xa8",
]
NAME = b'q"b\\n\nl\xff'  # the program's file name, and so the comm exec gives it
COMM = b'c"\\\n\xff\x1b'

# The traced command: sets its comm, then execs a program named NAME with ARGS three ways:
# through a vfork (its hold is released by that exec, whose path it reports), in a fork's child
# with execveat(2), and with execve(2) in the vfork's child.
SCRIPT = f"""
import ctypes, os, subprocess, sys
path = os.path.join(os.fsencode(sys.argv[1]), {NAME!r})
os.symlink(b"/bin/true", path)
with open("/proc/self/comm", "wb") as comm:
    comm.write({COMM!r})
args = {ARGS!r}
subprocess.run([path, *args], check=True)
pid = os.fork()
if pid == 0:
    argv = (ctypes.c_char_p * (len(args) + 2))(path, *args, None)
    envp = (ctypes.c_char_p * 1)(None)
    libc = ctypes.CDLL(None, use_errno=True)
    libc.syscall(int(sys.argv[2]), -100, path, argv, envp, 0)  # AT_FDCWD
    os._exit(127)
_, status = os.waitpid(pid, 0)
sys.exit(os.waitstatus_to_exitcode(status))
"""
EVENTS = ("vfork", "clone", "clone3", "execve", "execveat", "exit")


def test_hostile_argv_paths_and_comm_come_out_as_one_json_line_each(tmp_path: Path) -> None:
    command = [sys.executable, "-c", SCRIPT, str(tmp_path), str(syscall_number("execveat"))]
    tracer = subprocess.run(
        [sys.executable, "-m", "rawtrace", "trace", ",".join(EVENTS), "--json", "--", *command],
        capture_output=True,
        timeout=120,
    )
    assert tracer.returncode == 0, tracer.stderr
    lines = tracer.stdout.split(b"\n")
    assert lines[-1] == b""
    events = [json.loads(line) for line in lines[:-1]]
    summary = tracer.stderr.decode(errors="replace")
    assert f"rawtrace: {len(events)} events, 0 lost" in summary
    assert {e["eventName"] for e in events} <= set(EVENTS)
    for line, event in zip(lines, events):
        assert line.isascii() and line.decode() == json.dumps(event, separators=(",", ":"))

    path = kernel_string(os.path.join(os.fsencode(tmp_path), NAME))
    argv = [path, *(kernel_string(arg) for arg in ARGS)]

    def args(event: dict[str, object]) -> dict[str, object]:
        return {a["name"]: a["value"] for a in event["args"]}  # type: ignore[attr-defined]

    execs = [e for e in events if e["eventName"].startswith("execve")]
    hostile = [e["eventName"] for e in execs if args(e)["pathname"] == path]
    assert sorted(hostile) == ["execve", "execveat"]
    assert [args(e)["argv"] for e in execs if args(e)["pathname"] == path] == [argv, argv]
    released = [args(e) for e in events if args(e).get("exec_path") is not None]
    assert [a["exec_path"] for a in released] == [path]
    # the command's own comm, and the one exec gave the program (its name, cut to 15 bytes)
    names = {e["processName"] for e in events}
    assert {kernel_string(COMM), kernel_string(NAME[:15])} <= names
