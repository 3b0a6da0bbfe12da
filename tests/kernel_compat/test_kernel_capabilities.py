from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from kernel_compat import (
    Capability,
    FeatureMissing,
    KernelFactError,
    capability_name,
    effective_capabilities,
)
from kernel_compat.system.capabilities import _parse_cap_eff

if TYPE_CHECKING:
    from conftest import FakeRoot

STATUS = """\
Name:\tpython3
Umask:\t0022
State:\tR (running)
CapInh:\t0000000000000000
CapPrm:\t000001fffeffffff
CapEff:\t000001fffeffffff
CapBnd:\t000001fffeffffff
CapAmb:\t0000000000000000
NoNewPrivs:\t0
"""


def test_enum_values() -> None:
    assert int(Capability.SYS_ADMIN) == 21
    assert int(Capability.SYS_RESOURCE) == 24
    assert int(Capability.PERFMON) == 38
    assert int(Capability.BPF) == 39
    assert [int(cap) for cap in Capability] == list(range(41))


def test_capability_name() -> None:
    assert capability_name(Capability.BPF) == "CAP_BPF"
    assert capability_name(Capability.DAC_READ_SEARCH) == "CAP_DAC_READ_SEARCH"


def test_parse_all_but_sys_resource() -> None:
    caps = _parse_cap_eff(STATUS)
    assert caps == frozenset(Capability) - {Capability.SYS_RESOURCE}


@pytest.mark.parametrize(
    ("hexmask", "expected"),
    [
        ("0000000000000000", frozenset()),
        ("0000000000200000", frozenset({Capability.SYS_ADMIN})),
        ("000000c000000000", frozenset({Capability.PERFMON, Capability.BPF})),
        # Bits past CHECKPOINT_RESTORE (40) from newer kernels are ignored.
        ("ffffffffffffffff", frozenset(Capability)),
    ],
)
def test_parse_masks(hexmask: str, expected: frozenset[Capability]) -> None:
    assert _parse_cap_eff(f"CapPrm:\t{'f' * 16}\nCapEff:\t{hexmask}\n") == expected


@pytest.mark.parametrize(
    ("text", "problem"), [("Name:\tx\n", "no CapEff"), ("CapEff:\tzz\n", "bad")]
)
def test_parse_rejects(text: str, problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        _parse_cap_eff(text)


def test_effective_capabilities_from_root(fake_root: FakeRoot) -> None:
    fake_root.write("/proc/self/status", "CapEff:\t0000008000200000\n")
    assert effective_capabilities(fake_root.path) == {Capability.SYS_ADMIN, Capability.BPF}


def test_effective_capabilities_errors(fake_root: FakeRoot) -> None:
    with pytest.raises(FeatureMissing, match="status does not exist"):
        effective_capabilities(fake_root.path)
    fake_root.write("/proc/self/status", "Name:\tx\n")
    with pytest.raises(KernelFactError, match=r"cannot parse .*status: no CapEff line"):
        effective_capabilities(fake_root.path)


def test_real_machine_capabilities() -> None:
    with open("/proc/self/status") as f:
        line = next(line for line in f if line.startswith("CapEff:"))
    mask = int(line.split()[1], 16)
    expected = {cap for cap in Capability if mask & (1 << cap)}
    assert effective_capabilities() == expected
