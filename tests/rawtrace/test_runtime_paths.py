"""`rawtrace --version` names the drain and FFI backend in use; the CLI warns, in one line,
when they are the slow ones. The wheel's own proofs are in tests/packaging."""

from __future__ import annotations

import subprocess
import sys

import pytest

from rawtrace.transports.drain import COMPILED

SCRIPT = """
import sys
if {block_cffi}:
    sys.modules["cffi"] = sys.modules["_cffi_backend"] = None  # as on a host without cffi
from rawtrace.cli import command_line as cli
print(cli._slow_path_warning())
cli.main(["--version"])
"""


def run_cli(block_cffi: bool) -> list[str]:
    result = subprocess.run(
        [sys.executable, "-c", SCRIPT.format(block_cffi=block_cffi)],
        capture_output=True,
        text=True,
        timeout=120,  # a bound on a stuck process: QEMU guests start Python slowly
    )
    assert result.returncode == 0, result.stderr
    return result.stdout.splitlines()


def test_without_cffi_the_python_drain_and_ctypes_run_and_say_why() -> None:
    assert run_cli(block_cffi=True) == [
        "rawtrace: warning: the Python ring drain and ctypes syscalls (slower): "
        "cffi is not installed",
        "rawtrace 0.1.0 (drain: python, ffi: ctypes)",
    ]


@pytest.mark.skipif(COMPILED is None, reason="rawtrace.transports._perf_drain is not built here")
def test_with_cffi_the_compiled_drain_runs_without_a_warning() -> None:
    assert run_cli(block_cffi=False) == ["None", "rawtrace 0.1.0 (drain: compiled, ffi: cffi)"]
