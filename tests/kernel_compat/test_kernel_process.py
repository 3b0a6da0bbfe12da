from __future__ import annotations

import os
import resource
from typing import TYPE_CHECKING

import pytest

from kernel_compat import KernelFactError, memlock_limit, resident_kib

if TYPE_CHECKING:
    from conftest import FakeRoot

LIMITS = """\
Limit                     Soft Limit           Hard Limit           Units
Max stack size            8388608              unlimited            bytes
Max locked memory         {soft:<20} {hard:<20} bytes
Max address space         unlimited            unlimited            bytes
"""


def test_resident_kib_from_root(fake_root: FakeRoot) -> None:
    fake_root.write("/proc/42/status", "Name:\tpython3\nVmHWM:\t  30000 kB\nVmRSS:\t  21468 kB\n")
    assert resident_kib(42, fake_root.path) == 21468


def test_resident_kib_of_a_zombie_names_the_file(fake_root: FakeRoot) -> None:
    fake_root.write("/proc/42/status", "Name:\tpython3\nState:\tZ (zombie)\n")
    with pytest.raises(KernelFactError, match=r"/proc/42/status: no VmRSS line"):
        resident_kib(42, fake_root.path)


@pytest.mark.parametrize(("soft", "expected"), [("65536", 65536), ("unlimited", None)])
def test_memlock_limit_is_the_soft_limit(
    fake_root: FakeRoot, soft: str, expected: int | None
) -> None:
    fake_root.write("/proc/self/limits", LIMITS.format(soft=soft, hard="unlimited"))
    assert memlock_limit("self", fake_root.path) == expected


def test_memlock_limit_garbage(fake_root: FakeRoot) -> None:
    fake_root.write("/proc/self/limits", LIMITS.format(soft="lots", hard="lots"))
    with pytest.raises(KernelFactError, match="bad 'Max locked memory' soft limit 'lots'"):
        memlock_limit("self", fake_root.path)


def test_real_process() -> None:
    soft, _ = resource.getrlimit(resource.RLIMIT_MEMLOCK)
    assert memlock_limit() == (None if soft == resource.RLIM_INFINITY else soft)
    assert resident_kib(os.getpid()) > 0
