from __future__ import annotations

import os
from typing import TYPE_CHECKING

import pytest

from kernel_compat import FeatureMissing, KernelFactError, KernelRelease, kernel_release
from kernel_compat.system.release import _parse_release

if TYPE_CHECKING:
    from conftest import FakeRoot


@pytest.mark.parametrize(
    ("text", "version"),
    [
        ("6.18.44-fc-v669\n", (6, 18, 44)),
        ("5.10.0-46-amd64", (5, 10, 0)),
        ("6.1.0-56-cloud-amd64\n", (6, 1, 0)),
        ("7.2.0-rc3", (7, 2, 0)),
        ("4.19.0", (4, 19, 0)),
        ("3.10.0-1160.el7.x86_64", (3, 10, 0)),
        ("6.8-rc1", (6, 8, 0)),
        ("4.14.355+", (4, 14, 355)),
    ],
)
def test_parse_release(text: str, version: tuple[int, int, int]) -> None:
    release = _parse_release(text)
    assert release == KernelRelease(text.strip(), version)
    assert str(release) == text.strip()


@pytest.mark.parametrize("text", ["", "linux", "6", "v6.1"])
def test_parse_release_rejects(text: str) -> None:
    with pytest.raises(ValueError, match="no version number"):
        _parse_release(text)


def test_ordering_against_tuples() -> None:
    release = _parse_release("5.8.0-rc1")
    assert release.at_least(5, 8)
    assert release.at_least(5)
    assert not release.at_least(5, 8, 1)
    assert release >= (5, 8)
    assert release <= (5, 8)  # shorter tuples pad with zeros
    assert release > (5, 7, 19)
    assert release < (5, 9)
    assert not release < (5, 8, 0)
    assert release < _parse_release("5.10.0")
    assert sorted([_parse_release("5.10.1"), release]) == [release, _parse_release("5.10.1")]


def test_ordering_against_other_types_is_refused() -> None:
    with pytest.raises(TypeError):
        _ = _parse_release("5.8.0") < "5.9"  # type: ignore[operator]


def test_version_code() -> None:
    assert _parse_release("5.10.0").code == 0x050A00
    assert _parse_release("4.9.337").code == 0x0409FF


def test_kernel_release_from_root(fake_root: FakeRoot) -> None:
    fake_root.write("/proc/sys/kernel/osrelease", "6.1.0-56-cloud-amd64\n")
    assert kernel_release(fake_root.path) == KernelRelease("6.1.0-56-cloud-amd64", (6, 1, 0))


def test_kernel_release_missing(fake_root: FakeRoot) -> None:
    with pytest.raises(FeatureMissing, match="osrelease does not exist"):
        kernel_release(fake_root.path)


def test_kernel_release_garbage(fake_root: FakeRoot) -> None:
    fake_root.write("/proc/sys/kernel/osrelease", "mystery\n")
    with pytest.raises(KernelFactError, match=r"cannot parse .*osrelease: no version number"):
        kernel_release(fake_root.path)


def test_real_machine_release() -> None:
    release = kernel_release()
    uname = os.uname().release
    assert release.text == uname
    assert release.version[:2] == tuple(int(x) for x in uname.split(".")[:2])
