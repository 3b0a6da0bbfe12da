from __future__ import annotations

import os
from typing import TYPE_CHECKING

import pytest

from kernel_compat import (
    FeatureMissing,
    KernelFactError,
    lockdown,
    perf_event_paranoid,
    unprivileged_bpf_disabled,
)
from kernel_compat.system.sysctl import _parse_lockdown

if TYPE_CHECKING:
    from conftest import FakeRoot


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("none [integrity] confidentiality\n", "integrity"),
        ("[none] integrity confidentiality\n", "none"),
        ("none integrity [confidentiality]", "confidentiality"),
    ],
)
def test_parse_lockdown(text: str, expected: str) -> None:
    assert _parse_lockdown(text) == expected


@pytest.mark.parametrize("text", ["none integrity", "", "[]"])
def test_parse_lockdown_rejects(text: str) -> None:
    with pytest.raises(ValueError, match="no \\[active\\] mode"):
        _parse_lockdown(text)


def test_readers_from_root(fake_root: FakeRoot) -> None:
    fake_root.write("/proc/sys/kernel/perf_event_paranoid", "-1\n")
    fake_root.write("/proc/sys/kernel/unprivileged_bpf_disabled", "2\n")
    fake_root.write("/sys/kernel/security/lockdown", "none [integrity] confidentiality\n")
    assert perf_event_paranoid(fake_root.path) == -1
    assert unprivileged_bpf_disabled(fake_root.path) == 2
    assert lockdown(fake_root.path) == "integrity"


def test_readers_missing(fake_root: FakeRoot) -> None:
    with pytest.raises(FeatureMissing, match="perf_event_paranoid does not exist"):
        perf_event_paranoid(fake_root.path)
    with pytest.raises(FeatureMissing, match="unprivileged_bpf_disabled does not exist"):
        unprivileged_bpf_disabled(fake_root.path)
    assert lockdown(fake_root.path) is None


def test_readers_garbage(fake_root: FakeRoot) -> None:
    fake_root.write("/proc/sys/kernel/perf_event_paranoid", "high\n")
    fake_root.write("/sys/kernel/security/lockdown", "none\n")
    with pytest.raises(KernelFactError, match="does not hold an integer: 'high'"):
        perf_event_paranoid(fake_root.path)
    with pytest.raises(KernelFactError, match=r"cannot parse .*lockdown: no \[active\] mode"):
        lockdown(fake_root.path)


def test_real_machine_sysctls() -> None:
    with open("/proc/sys/kernel/perf_event_paranoid") as f:
        assert perf_event_paranoid() == int(f.read())
    with open("/proc/sys/kernel/unprivileged_bpf_disabled") as f:
        assert unprivileged_bpf_disabled() == int(f.read())
    mode = lockdown()
    if os.path.exists("/sys/kernel/security/lockdown"):
        assert mode in ("none", "integrity", "confidentiality")
    else:
        assert mode is None
