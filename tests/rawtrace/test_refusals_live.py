"""Failures a user meets: each a clear message, nothing leaked, no traceback."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from kernel_features import require_feature

from bpf_bytecode import Reg
from bpf_bytecode.asm import exit_, mov64_reg
from kernel_compat import pmu_format_bit, pmu_type
from rawtrace import KernelFeatureMissing, VerifierError, trace
from rawtrace.events import catalogue
from rawtrace.events.declaring import EventSpec, SyscallFeed
from rawtrace.kernel.bpf import ProgType
from rawtrace.kernel.loading import load_program

pytestmark = pytest.mark.live


def test_unprivileged_user_gets_one_line_naming_the_capabilities() -> None:
    # Python itself lives under /root here, so drop privileges after the imports, not before.
    script = (
        "import os, sys, rawtrace.cli; os.setgroups([]); os.setgid(65534); os.setuid(65534);"
        "sys.exit(rawtrace.cli.main(['trace', 'vfork', '--duration', '1']))"
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert result.returncode == 1
    assert result.stdout == ""
    assert result.stderr.count("\n") == 1
    assert "tracing needs CAP_BPF and CAP_PERFMON (or CAP_SYS_ADMIN)" in result.stderr
    assert "sudo" in result.stderr
    assert "Traceback" not in result.stderr


def test_missing_tracepoint_names_it_and_the_config(monkeypatch: pytest.MonkeyPatch) -> None:
    spec = EventSpec(
        name="nosuch",
        event_id=100_000,
        args=(),
        feed=SyscallFeed("rawtrace_no_such_call"),
        fields=(),
        description="a syscall no kernel has",
    )
    monkeypatch.setitem(catalogue.CATALOGUE, "nosuch", spec)  # type: ignore[attr-defined]
    with pytest.raises(KernelFeatureMissing) as caught, trace("nosuch"):
        pass
    assert "syscalls:sys_exit_rawtrace_no_such_call" in str(caught.value)
    assert "CONFIG_FTRACE_SYSCALLS" in str(caught.value)


def test_verifier_rejection_carries_the_log() -> None:
    reads_uninitialised_r2 = [mov64_reg(Reg.R0, Reg.R2), exit_()]
    with pytest.raises(VerifierError) as caught:
        load_program("bad", ProgType.TRACEPOINT, reads_uninitialised_r2)
    assert "R2 !read_ok" in caught.value.log
    assert "R2 !read_ok" in str(caught.value)
    assert caught.value.errno == 13  # EACCES: the verifier said no


def test_kprobe_pmu_is_found_by_name() -> None:
    """Issue 4 attaches through this PMU; here only its discovery is checked."""
    require_feature("attach:kprobe")  # fails where the kernel should have the PMU and does not
    pmu = pmu_type("kprobe")
    assert pmu > 5  # dynamic PMU types come after the fixed ones (0-5)
    assert pmu_format_bit("kprobe", "retprobe") == 0


def test_cli_keeps_a_rejected_programs_log_in_a_file(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A program the verifier refuses (here: one that reads an unset register) ends the CLI
    with one line naming the program and the file that holds the verifier's log."""
    from rawtrace.cli import command_line as cli
    from rawtrace.events import event_programs

    monkeypatch.setattr(
        event_programs, "syscall_exit", lambda **_: [mov64_reg(Reg.R0, Reg.R2), exit_()]
    )
    assert cli.main(["trace", "vfork", "--duration", "0.1"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert "rejected BPF program 'vfork_exit'" in err
    path = err.rstrip().rsplit(" ", 1)[1]
    try:
        with open(path) as log:
            assert "R2 !read_ok" in log.read()
    finally:
        os.unlink(path)
