"""`rawtrace trace vfork --summary -- COMMAND`: the process tree of a real command, three levels
deep, with forks, vforks, execs and exit codes, while only the vfork events are printed."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from workload import interpreter_comm

pytestmark = pytest.mark.live

# level 2: dash vforks python (and execs it), forks a subshell that exits 3;
# level 3: python forks a child that exits 5, then vforks /bin/true (subprocess)
SHELL = 'echo sh $$; "$PYTHON" -c "$SCRIPT"; (exit 3); exit 6'
SCRIPT = """
import os, subprocess, sys
print("python", os.getpid(), flush=True)
pid = os.fork()
if pid == 0:
    os._exit(5)
os.waitpid(pid, 0)
true = subprocess.Popen(["/bin/true"])
true.wait()
print("forked", pid, "true", true.pid, flush=True)
sys.exit(4)
"""
LINE = re.compile(r"^(?P<indent>[│├└─ ]*)(?P<pid>\d+) (?P<comm>\S+): (?P<rest>.*)$")
DURATION = re.compile(r"\d+\.\d{3} m?s")


def test_summary_tree_of_a_command(tmp_path: Path) -> None:
    events_file = tmp_path / "events.json"
    result = subprocess.run(
        [sys.executable, "-m", "rawtrace", "trace", "vfork", "--summary", "--json",
         "-o", str(events_file), "--", "/bin/sh", "-c", SHELL],
        env={**os.environ, "PYTHON": sys.executable, "SCRIPT": SCRIPT},
        capture_output=True,
        text=True,
        timeout=60,
    )  # fmt: skip
    assert result.returncode == 6, result.stderr
    said = dict(line.split(" ", 1) for line in result.stdout.splitlines())
    shell, python = int(said["sh"]), int(said["python"])
    forked, true = (int(word) for word in said["forked"].split()[::2])

    stderr = result.stderr.splitlines()
    at = stderr.index("rawtrace: process tree")
    tree = [LINE.match(line) for line in stderr[at + 1 : -1]]
    assert all(tree), stderr
    rows = [
        (m["indent"], int(m["pid"]), m["comm"], DURATION.sub("T", m["rest"]))
        for m in tree
        if m is not None
    ]
    subshell = rows[-1][1]
    assert rows == [
        ("", shell, "sh", "exec /bin/sh, exit 6"),
        ("├─", python, interpreter_comm(),
         f"vfork (held the parent T), exec {sys.executable}, exit 4, lived T"),
        ("│ ├─", forked, interpreter_comm(), "clone, exit 5, lived T"),
        ("│ └─", true, "true", "vfork (held the parent T), exec /bin/true, exit 0, lived T"),
        ("└─", subshell, "sh", "clone, exit 3, lived T"),
    ]  # fmt: skip
    assert subshell not in {shell, python, forked, true}

    # only the vfork events are printed, though the summary traced every lifecycle event
    events = [json.loads(line) for line in events_file.read_text().splitlines()]
    assert [(e["eventName"], e["processId"], e["returnValue"]) for e in events] == [
        ("vfork", shell, python),
        ("vfork", python, true),
    ]
    # what the tree was built from: 2 vforks, 2 clones, 3 execs and 5 exits
    assert re.fullmatch(r"rawtrace: 2 events, 0 lost .*; 12 read from the rings", stderr[-1])


# two new pid namespaces side by side, each with its pid 1 vforking /bin/true as its pid 2.
# Both live at once: the kernel hands a freed namespace's inode number to the next one (seen
# under 6.1 and 5.10), so one after the other they could share it
TWO_NAMESPACES = """
import subprocess, sys
inner = "import subprocess, time; subprocess.run(['/bin/true']); time.sleep(2)"
both = [subprocess.Popen(["unshare", "--pid", "--fork", sys.executable, "-c", inner])
        for _ in range(2)]
assert [child.wait() for child in both] == [0, 0]
"""


def test_two_pid_namespaces_make_two_trees(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "rawtrace", "trace", "vfork", "--summary", "--quiet",
         "-o", str(tmp_path / "events"), "--", sys.executable, "-c", TWO_NAMESPACES],
        capture_output=True,
        text=True,
        timeout=60,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    stderr = result.stderr.splitlines()
    tree = stderr[stderr.index("rawtrace: process tree") + 1 :]
    # each namespace's pid 1 (the unshare's child, a root of its own) and its pid 2, once each
    inner = [DURATION.sub("T", line) for line in tree if line.startswith(("1 ", "└─2 "))]
    expected = [
        f"1 {interpreter_comm()}: exec {sys.executable}, exit 0",
        "└─2 true: vfork (held the parent T), exec /bin/true, exit 0, lived T",
    ]
    assert inner == expected * 2, tree
