from __future__ import annotations

import os
from typing import TYPE_CHECKING

import pytest

from kernel_compat import FeatureMissing, KernelFactError, online_cpus, possible_cpus
from kernel_compat.system.cpus import _parse_cpu_list

if TYPE_CHECKING:
    from conftest import FakeRoot


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("0-3,5,7-8\n", [0, 1, 2, 3, 5, 7, 8]),
        ("0\n", [0]),
        ("0-1", [0, 1]),
        ("\n", []),
        ("5,0-2\n", [0, 1, 2, 5]),
    ],
)
def test_parse_cpu_list(text: str, expected: list[int]) -> None:
    assert _parse_cpu_list(text) == expected


@pytest.mark.parametrize("text", ["0-", "a", "3-1", "0,,1", "-1"])
def test_parse_cpu_list_rejects(text: str) -> None:
    with pytest.raises(ValueError, match="bad CPU range"):
        _parse_cpu_list(text)


def test_readers_from_root(fake_root: FakeRoot) -> None:
    fake_root.write("/sys/devices/system/cpu/online", "0-2,4\n")
    fake_root.write("/sys/devices/system/cpu/possible", "0-7\n")
    assert online_cpus(fake_root.path) == [0, 1, 2, 4]
    assert possible_cpus(fake_root.path) == list(range(8))


def test_readers_errors(fake_root: FakeRoot) -> None:
    with pytest.raises(FeatureMissing, match="cpu/online does not exist"):
        online_cpus(fake_root.path)
    fake_root.write("/sys/devices/system/cpu/possible", "zero\n")
    with pytest.raises(KernelFactError, match=r"cannot parse .*cpu/possible: bad CPU range"):
        possible_cpus(fake_root.path)


def test_real_machine_cpus() -> None:
    online = online_cpus()
    # glibc answers _SC_NPROCESSORS_ONLN from the same file, so the counts must agree.
    assert len(online) == os.sysconf("SC_NPROCESSORS_ONLN")
    assert set(os.sched_getaffinity(0)) <= set(online)
    assert set(online) <= set(possible_cpus())
