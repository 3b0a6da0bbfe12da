from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from kernel_compat import FeatureMissing, vmlinux_btf_path

if TYPE_CHECKING:
    from conftest import FakeRoot


def test_vmlinux_btf_path_from_root(fake_root: FakeRoot) -> None:
    path = fake_root.write("/sys/kernel/btf/vmlinux", "x")
    assert vmlinux_btf_path(fake_root.path) == path


def test_vmlinux_btf_path_missing(fake_root: FakeRoot) -> None:
    with pytest.raises(FeatureMissing, match="btf/vmlinux does not exist"):
        vmlinux_btf_path(fake_root.path)


def test_real_machine_btf() -> None:
    try:
        path = vmlinux_btf_path()
    except FeatureMissing as exc:
        pytest.skip(str(exc))
    with open(path, "rb") as f:
        # struct btf_header starts with magic 0xeB9F in native byte order.
        assert f.read(2) in (b"\x9f\xeb", b"\xeb\x9f")
