from __future__ import annotations

import os
from typing import TYPE_CHECKING

import pytest

from kernel_compat import FeatureMissing, KernelFactError, kernel_config, possible_cpus
from kernel_compat.system.config import _parse_config

if TYPE_CHECKING:
    from conftest import FakeRoot

CONFIG = """\
#
# Automatically generated file; DO NOT EDIT.
# Linux/x86 6.18.44 Kernel Configuration
#
CONFIG_CC_VERSION_TEXT="gcc (GCC) 15.3.0"
CONFIG_BPF=y
CONFIG_BPF_SYSCALL=y
CONFIG_NET_CLS_BPF=m
# CONFIG_KPROBES is not set
CONFIG_NR_CPUS=256
CONFIG_LOCALVERSION="-a \\"quoted\\" \\\\ back"
CONFIG_HAND_EDITED=n
"""


def test_parse_config() -> None:
    config = _parse_config(CONFIG, "src")
    assert dict(config) == {
        "CONFIG_CC_VERSION_TEXT": "gcc (GCC) 15.3.0",
        "CONFIG_BPF": "y",
        "CONFIG_BPF_SYSCALL": "y",
        "CONFIG_NET_CLS_BPF": "m",
        "CONFIG_NR_CPUS": "256",
        "CONFIG_LOCALVERSION": '-a "quoted" \\ back',
    }
    assert config.source == "src"


def test_lookup_with_or_without_prefix() -> None:
    config = _parse_config(CONFIG)
    assert config["NR_CPUS"] == config["CONFIG_NR_CPUS"] == "256"
    assert "BPF" in config
    assert "KPROBES" not in config
    assert config.get("CONFIG_KPROBES") is None
    assert len(config) == 6
    assert config == _parse_config(CONFIG)


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("BPF", True),
        ("CONFIG_BPF_SYSCALL", True),
        ("NET_CLS_BPF", True),  # module counts
        ("KPROBES", False),  # "is not set"
        ("HAND_EDITED", False),  # =n
        ("NR_CPUS", False),  # a value, not y/m
        ("NOT_MENTIONED", False),
    ],
)
def test_enabled(name: str, expected: bool) -> None:
    assert _parse_config(CONFIG).enabled(name) is expected


def test_kernel_config_prefers_proc(fake_root: FakeRoot) -> None:
    path = fake_root.write_gzip("/proc/config.gz", "CONFIG_FROM_PROC=y\n")
    fake_root.write("/proc/sys/kernel/osrelease", "6.1.0-56-cloud-amd64\n")
    fake_root.write("/boot/config-6.1.0-56-cloud-amd64", "CONFIG_FROM_BOOT=y\n")
    config = kernel_config(fake_root.path)
    assert dict(config) == {"CONFIG_FROM_PROC": "y"}
    assert config.source == str(path)


def test_kernel_config_falls_back_to_boot(fake_root: FakeRoot) -> None:
    fake_root.write("/proc/sys/kernel/osrelease", "6.1.0-56-cloud-amd64\n")
    path = fake_root.write("/boot/config-6.1.0-56-cloud-amd64", CONFIG)
    config = kernel_config(fake_root.path)
    assert config.enabled("BPF_SYSCALL")
    assert config.source == str(path)


def test_kernel_config_explicit_release(fake_root: FakeRoot) -> None:
    fake_root.write("/boot/config-5.10.0-46-amd64", "CONFIG_X=m\n")
    assert dict(kernel_config(fake_root.path, release="5.10.0-46-amd64")) == {"CONFIG_X": "m"}


def test_kernel_config_missing_names_both_paths(fake_root: FakeRoot) -> None:
    with pytest.raises(FeatureMissing) as info:
        kernel_config(fake_root.path, release="7.2.0-rc3")
    assert str(info.value) == (
        f"no kernel config: neither {fake_root.path / 'proc/config.gz'}"
        f" nor {fake_root.path / 'boot/config-7.2.0-rc3'} exists"
    )


def test_kernel_config_bad_gzip(fake_root: FakeRoot) -> None:
    fake_root.write("/proc/config.gz", "CONFIG_NOT_GZIP=y\n")
    with pytest.raises(KernelFactError, match=r"cannot read .*config.gz") as info:
        kernel_config(fake_root.path)
    assert isinstance(info.value.__cause__, OSError)


def test_kernel_config_truncated_gzip(fake_root: FakeRoot) -> None:
    path = fake_root.write_gzip("/proc/config.gz", CONFIG * 10)
    path.write_bytes(path.read_bytes()[:40])
    with pytest.raises(KernelFactError, match=r"cannot read .*config.gz"):
        kernel_config(fake_root.path)


def test_real_machine_config() -> None:
    try:
        config = kernel_config()
    except FeatureMissing as exc:
        pytest.skip(f"no kernel config on this machine: {exc}")
    # Cross-check two options against what the running kernel visibly has.
    assert config.enabled("DEBUG_INFO_BTF") == os.path.isfile("/sys/kernel/btf/vmlinux")
    assert int(config["NR_CPUS"]) >= len(possible_cpus())
