"""Limits and privileges explain themselves. A low RLIMIT_NOFILE (a real one, set in rawtrace's
process): the soft limit is raised to the hard one, and a hard limit too low for the trace ends
it with one line naming the limit, whichever fd ran out first, never a traceback or a switch to
another attach family. Capabilities without access to tracefs: one line with the fix."""

from __future__ import annotations

import os
import resource
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.live

ROOT = Path(__file__).resolve().parents[2]


def _trace_with_fds(soft: int, hard: int) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "rawtrace", "trace", "vfork,exit", "--duration", "0.1"],
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard)),
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.mark.parametrize("limit", [8, 12, 16, 20, 24])  # a trace here needs about 50
def test_a_hard_limit_too_low_is_one_line_naming_it(limit: int) -> None:
    result = _trace_with_fds(limit, limit)
    assert result.returncode == 1, result.stderr
    assert result.stderr == (
        f"rawtrace: out of file descriptors: RLIMIT_NOFILE allows {limit} (hard limit {limit}); "
        "raise it, e.g. `ulimit -n 4096` (as root, the hard limit too), then trace again\n"
    )


def test_a_low_soft_limit_is_raised_to_the_hard_one() -> None:
    result = _trace_with_fds(16, 4096)
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.skipif(shutil.which("setpriv") is None, reason="needs setpriv (util-linux)")
def test_capabilities_without_tracefs_access_are_one_line_with_the_fix() -> None:
    """CAP_BPF and CAP_PERFMON (ambient, so that they survive the exec) for an unprivileged
    user, who cannot read tracefs."""
    caps = "+bpf,+perfmon"
    result = subprocess.run(
        [
            *("setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"),
            *(f"--inh-caps={caps}", f"--ambient-caps={caps}"),
            *(sys.executable, "-m", "rawtrace", "trace", "vfork", "--duration", "0.1"),
        ],
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=60,
    )
    if not result.stderr.startswith("rawtrace:"):  # Python itself unreadable to that user
        pytest.skip(f"Python does not run as uid 65534 here: {result.stderr[:200]}")
    assert result.returncode == 1
    assert result.stderr.count("\n") == 1, result.stderr
    assert "Permission denied" in result.stderr
    assert result.stderr.endswith("; run rawtrace as root, or give its user read access there\n")
