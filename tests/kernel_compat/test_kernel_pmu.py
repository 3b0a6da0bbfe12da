from __future__ import annotations

import os
from typing import TYPE_CHECKING

import pytest

from kernel_compat import (
    FeatureMissing,
    KernelFactError,
    PmuFormatField,
    list_pmus,
    pmu_format_bit,
    pmu_format_field,
    pmu_type,
)
from kernel_compat.pmu import _parse_format_field

if TYPE_CHECKING:
    from conftest import FakeRoot

DEVICES = "/sys/bus/event_source/devices"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("config:0\n", PmuFormatField("config", (0,))),
        ("config:0-7\n", PmuFormatField("config", tuple(range(8)))),
        ("config:32-63", PmuFormatField("config", tuple(range(32, 64)))),
        ("config1:0-1\n", PmuFormatField("config1", (0, 1))),
        ("config:0-1,32\n", PmuFormatField("config", (0, 1, 32))),
    ],
)
def test_parse_format_field(text: str, expected: PmuFormatField) -> None:
    assert _parse_format_field(text) == expected


def test_first_bit_of_range() -> None:
    assert _parse_format_field("config:3-7").first_bit == 3


@pytest.mark.parametrize("text", ["", "config", "event:0", "config:7-3", "config:64", "config:a"])
def test_parse_format_field_rejects(text: str) -> None:
    with pytest.raises(ValueError):
        _parse_format_field(text)


def _uprobe_and_kprobe(fake_root: FakeRoot) -> None:
    fake_root.write(f"{DEVICES}/uprobe/type", "8\n")
    fake_root.write(f"{DEVICES}/uprobe/format/retprobe", "config:0\n")
    fake_root.write(f"{DEVICES}/uprobe/format/ref_ctr_offset", "config:32-63\n")
    fake_root.write(f"{DEVICES}/kprobe/type", "7\n")
    fake_root.write(f"{DEVICES}/kprobe/format/retprobe", "config:0\n")
    fake_root.write(f"{DEVICES}/msr/type", "9\n")
    fake_root.write(f"{DEVICES}/msr/format/event", "config:0-63\n")
    fake_root.write(f"{DEVICES}/odd/format/flag", "config1:3\n")
    fake_root.mkdir(f"{DEVICES}/notype")


def test_pmu_type(fake_root: FakeRoot) -> None:
    _uprobe_and_kprobe(fake_root)
    assert pmu_type("uprobe", fake_root.path) == 8
    assert pmu_type("kprobe", fake_root.path) == 7


def test_pmu_type_missing(fake_root: FakeRoot) -> None:
    _uprobe_and_kprobe(fake_root)
    path = fake_root.path / DEVICES.lstrip("/") / "nope/type"
    with pytest.raises(FeatureMissing) as info:
        pmu_type("nope", fake_root.path)
    assert str(info.value) == f"no PMU named 'nope' ({path} does not exist)"


def test_pmu_type_garbage(fake_root: FakeRoot) -> None:
    fake_root.write(f"{DEVICES}/bad/type", "eight\n")
    with pytest.raises(KernelFactError, match="does not hold an integer: 'eight'"):
        pmu_type("bad", fake_root.path)


def test_pmu_format_bit(fake_root: FakeRoot) -> None:
    _uprobe_and_kprobe(fake_root)
    assert pmu_format_bit("uprobe", "retprobe", fake_root.path) == 0
    assert pmu_format_bit("kprobe", "retprobe", fake_root.path) == 0
    assert pmu_format_field("uprobe", "ref_ctr_offset", fake_root.path) == PmuFormatField(
        "config", tuple(range(32, 64))
    )


def test_pmu_format_bit_refuses_multi_bit(fake_root: FakeRoot) -> None:
    _uprobe_and_kprobe(fake_root)
    with pytest.raises(KernelFactError, match=r"'ref_ctr_offset' is not a single bit") as info:
        pmu_format_bit("uprobe", "ref_ctr_offset", fake_root.path)
    assert "says config:32-63" in str(info.value)
    with pytest.raises(KernelFactError, match=r"says config1:3"):
        pmu_format_bit("odd", "flag", fake_root.path)


def test_pmu_format_field_missing(fake_root: FakeRoot) -> None:
    _uprobe_and_kprobe(fake_root)
    with pytest.raises(FeatureMissing, match="PMU 'uprobe' has no format field 'nope'"):
        pmu_format_bit("uprobe", "nope", fake_root.path)


def test_pmu_format_field_garbage(fake_root: FakeRoot) -> None:
    fake_root.write(f"{DEVICES}/bad/format/f", "bits 0\n")
    with pytest.raises(KernelFactError, match=r"cannot parse .*format/f: unexpected format"):
        pmu_format_field("bad", "f", fake_root.path)


def test_pmu_names_are_single_components(fake_root: FakeRoot) -> None:
    with pytest.raises(ValueError):
        pmu_type("../uprobe", fake_root.path)
    with pytest.raises(ValueError):
        pmu_format_bit("uprobe", "..", fake_root.path)


def test_list_pmus(fake_root: FakeRoot) -> None:
    _uprobe_and_kprobe(fake_root)
    assert list_pmus(fake_root.path) == {"kprobe": 7, "msr": 9, "uprobe": 8}


def test_list_pmus_without_event_source(fake_root: FakeRoot) -> None:
    with pytest.raises(FeatureMissing, match="devices does not exist"):
        list_pmus(fake_root.path)


def test_real_machine_pmus() -> None:
    if not os.path.isdir(DEVICES):
        pytest.skip(f"{DEVICES} does not exist")
    pmus = list_pmus()
    # PERF_TYPE_SOFTWARE and PERF_TYPE_TRACEPOINT are fixed by the perf ABI.
    assert pmus["software"] == 1
    assert pmus["tracepoint"] == 2
    assert pmu_type("tracepoint") == 2
    for name in ("kprobe", "uprobe"):
        if name in pmus:
            assert pmu_format_bit(name, "retprobe") == 0
        else:
            with pytest.raises(FeatureMissing):
                pmu_type(name)
