"""The README's commands and examples work as written."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

README = (Path(__file__).parent.parent / "README.md").read_text()


def test_readme_opens_with_the_two_commands() -> None:
    first_block = re.search(r"```sh\n(.*?)```", README, re.S)
    assert first_block is not None
    commands = first_block.group(1).strip().splitlines()
    assert len(commands) == 2
    assert "rawtrace trace vfork" in commands[0]
    assert "python3 -m pytest" in commands[1]
    assert "python3 -m pytest" in (Path(__file__).parent.parent / ".ci/run").read_text()


@pytest.mark.live
def test_the_embedding_example_runs_as_written() -> None:
    section = README.split("## As a library", 1)[1]
    example = re.search(r"```python\n(.*?)```", section, re.S)
    assert example is not None
    assert len(example.group(1).strip().splitlines()) <= 10
    result = subprocess.run(
        [sys.executable, "-c", example.group(1)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    name_pid_ret, event_name = result.stdout.splitlines()
    comm, pid, ret = name_pid_ret.split()
    assert comm == "python3"
    assert pid == ret and int(pid) > 0
    assert event_name == "vfork"


@pytest.mark.live
def test_the_declared_event_example_runs_as_written() -> None:
    section = README.split("### Your own events", 1)[1]
    example = re.search(r"```python\n(.*?)```", section, re.S)
    assert example is not None
    assert len(example.group(1).strip().splitlines()) < 15
    result = subprocess.run(
        [sys.executable, "-c", example.group(1)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout == "kill True 15\n"


@pytest.mark.live
def test_the_tracepoint_event_example_runs_as_written() -> None:
    section = README.split('rawtrace.tracepoint_event("category:name")', 1)[1]
    example = re.search(r"```python\n(.*?)```", section, re.S)
    assert example is not None
    result = subprocess.run(
        [sys.executable, "-c", example.group(1)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout == f"True {Path(sys.executable).name[:15]}\n"
