"""Tests of the QEMU kernel harness itself: tests/vm/run.

Each test boots a kernel (5-15 s); the first run of a kernel also downloads it.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from guest import GUEST_MARK  # tests/vm is on sys.path through conftest.py
from harness_error import HARNESS_FAILURE, INSTALL_HINT
from kernels import read_kernel_list

RUN = str(Path(__file__).with_name("run"))
KERNEL = "6.1"

pytestmark = [
    pytest.mark.vm,
    pytest.mark.skipif(
        shutil.which("qemu-system-x86_64") is None,
        reason=f"qemu is not installed ({INSTALL_HINT})",
    ),
    pytest.mark.skipif(
        GUEST_MARK in os.environ, reason="already in a tests/vm guest: no QEMU in QEMU"
    ),
]


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, RUN, *args], capture_output=True, text=True, timeout=600, check=False
    )


def test_exit_status_and_output_come_back() -> None:
    proc = run(KERNEL, "--", "sh", "-c", "echo to-stdout; echo to-stderr >&2; exit 3")
    assert proc.returncode == 3, proc.stderr
    assert proc.stdout == "to-stdout\n"
    assert proc.stderr.endswith("to-stderr\n")


def test_output_streams_while_the_command_runs() -> None:
    command = [sys.executable, RUN, KERNEL, "--", "sh", "-c", "echo early; sleep 8; echo late"]
    with subprocess.Popen(command, stdout=subprocess.PIPE, text=True) as proc:
        assert proc.stdout is not None
        assert proc.stdout.readline() == "early\n"
        arrived = time.monotonic()
        assert proc.poll() is None, "the first line only came when the guest had finished"
        assert proc.stdout.read() == "late\n"
        assert proc.wait() == 0
    assert time.monotonic() - arrived > 4


def test_a_command_past_its_timeout_is_a_harness_failure() -> None:
    proc = run(KERNEL, "--timeout", "5", "--", "sleep", "60")
    assert proc.returncode == HARNESS_FAILURE
    assert "the command timed out after 5 s" in proc.stderr
    assert "Linux version" in proc.stderr  # the guest console comes with it


def test_the_tree_is_writable_and_a_share_reaches_the_host(tmp_path: Path) -> None:
    script = f"touch {RUN}.vm-probe && uname -r > {tmp_path}/release && pwd >> {tmp_path}/release"
    proc = run(KERNEL, "--share", str(tmp_path), "--", "sh", "-c", script)
    assert proc.returncode == 0, proc.stderr
    assert not os.path.exists(f"{RUN}.vm-probe"), "a guest write leaked to the host"
    release, cwd = (tmp_path / "release").read_text().splitlines()
    assert release != os.uname().release
    assert cwd == os.getcwd()


def test_an_unknown_kernel_is_a_harness_failure() -> None:
    proc = run("1.0", "--", "true")
    assert proc.returncode == HARNESS_FAILURE
    assert "unknown kernel '1.0'" in proc.stderr


@pytest.mark.parametrize(
    "kernel",
    [
        pytest.param(
            e.name,
            marks=pytest.mark.skipif(
                shutil.which(e.arch.qemu) is None, reason=f"{e.arch.qemu} is not installed"
            ),
        )
        for e in read_kernel_list()
    ],
)
def test_every_kernel_of_the_matrix_has_kprobes(kernel: str) -> None:
    # The acceptance check of issue 3, as written there.
    pmu = "/sys/bus/event_source/devices/kprobe"
    proc = run(
        kernel,
        "--",
        "python3",
        "-c",
        f"import os,sys; sys.exit(0 if os.path.exists({pmu!r}) else 3)",
    )
    assert proc.returncode == 0, proc.stderr
