"""Both FFI backends trace: cffi where installed, ctypes on a host with nothing but Python."""

from __future__ import annotations

import subprocess
import sys

import pytest

pytestmark = pytest.mark.live

SCRIPT = """
import sys
if {block_cffi}:
    sys.modules["cffi"] = None  # import cffi now raises ImportError, as on a bare host
import subprocess
import rawtrace
from rawtrace.kernel import ffi as syscalls
with rawtrace.trace("vfork") as tracer:
    child = subprocess.Popen(["true"])
    child.wait()
    events = [e for e in tracer.read(1.0) if e.process_id == child.pid or e.arg("pid") == child.pid]
print(syscalls.BACKEND, [e.arg("pid") == child.pid for e in events])
"""


@pytest.mark.parametrize(("block_cffi", "backend"), [(False, "cffi"), (True, "ctypes")])
def test_backend_traces_a_vfork(block_cffi: bool, backend: str) -> None:
    result = subprocess.run(
        [sys.executable, "-c", SCRIPT.format(block_cffi=block_cffi)],
        capture_output=True,
        text=True,
        timeout=120,  # a bound on a stuck process: QEMU guests start Python slowly
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == [backend, "[True]"]
