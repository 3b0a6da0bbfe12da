"""The attach ladder with stand-in families: order, fall-through on attach failures, reasons."""

from __future__ import annotations

import errno
from collections.abc import Mapping
from pathlib import Path
from typing import Callable

import pytest

from rawtrace.attach import Link, SyscallFamily, SyscallPrograms, ladder
from rawtrace.errors import KernelFeatureMissing, PermissionMissing, RawtraceError


class _Family:
    def __init__(self, name: str) -> None:
        self.name = name

    def attach_syscall(self, syscall: str, programs: SyscallPrograms) -> Link:
        raise NotImplementedError


def _ladder(monkeypatch: pytest.MonkeyPatch, precheck: dict[str, Exception]) -> None:
    def make(name: str) -> ladder.Rung:
        def build(tracefs: Path) -> SyscallFamily:
            if name in precheck:
                raise precheck[name]
            return _Family(name)

        return ladder.Rung(name, build)

    monkeypatch.setattr(ladder, "LADDER", tuple(make(r.name) for r in ladder.LADDER))


def _attach_fails(failing: Mapping[str, Exception]) -> Callable[[SyscallFamily], None]:
    def attach(family: SyscallFamily) -> None:
        if family.name in failing:
            raise failing[family.name]

    return attach


def test_the_ladder_order() -> None:
    assert ladder.ATTACH_MODES == (
        "auto",
        "kprobe",
        "kprobe-legacy",
        "tracepoint",
        "raw_tracepoint",
        "tp_btf",
    )


def test_auto_falls_through_precheck_and_attach_failures(monkeypatch: pytest.MonkeyPatch) -> None:
    no_kprobes = KernelFeatureMissing("kprobes are not available: no CONFIG_KPROBES", "fix")
    _ladder(monkeypatch, {"kprobe": no_kprobes, "kprobe-legacy": no_kprobes})
    refused = OSError(errno.ENODEV, "No such device")
    choice = ladder.climb("auto", Path("/"), _attach_fails({"tracepoint": refused}))
    assert choice.family == "raw_tracepoint"
    assert [(f.family, f.reason) for f in choice.failures] == [
        ("kprobe", "kprobes are not available: no CONFIG_KPROBES; fix"),
        ("kprobe-legacy", "kprobes are not available: no CONFIG_KPROBES; fix"),
        ("tracepoint", "No such device (ENODEV)"),
    ]


def test_a_wrapped_errno_is_named() -> None:
    try:
        try:
            raise OSError(errno.ENOENT, "No such file or directory")
        except OSError as exc:
            raise KernelFeatureMissing("the kernel refused a kprobe", "fix") from exc
    except KernelFeatureMissing as exc:
        assert ladder.reason(exc) == "the kernel refused a kprobe; fix (ENOENT)"


def test_forced_family_raises_its_own_error(monkeypatch: pytest.MonkeyPatch) -> None:
    no_kprobes = KernelFeatureMissing("kprobes are not available: no CONFIG_KPROBES", "fix")
    _ladder(monkeypatch, {"kprobe": no_kprobes})
    with pytest.raises(KernelFeatureMissing) as caught:
        ladder.climb("kprobe", Path("/"), _attach_fails({}))
    assert caught.value is no_kprobes


def test_forced_family_turns_an_errno_into_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    _ladder(monkeypatch, {})
    failing = {"tp_btf": OSError(errno.EINVAL, "Invalid argument")}
    with pytest.raises(KernelFeatureMissing, match=r"tp_btf failed: Invalid argument \(EINVAL\)"):
        ladder.climb("tp_btf", Path("/"), _attach_fails(failing))


def test_nothing_works(monkeypatch: pytest.MonkeyPatch) -> None:
    _ladder(monkeypatch, {})
    failing = {r.name: OSError(errno.EINVAL, "Invalid argument") for r in ladder.LADDER}
    with pytest.raises(KernelFeatureMissing, match="no attach family works") as caught:
        ladder.climb("auto", Path("/"), _attach_fails(failing))
    assert "tp_btf: Invalid argument (EINVAL)" in str(caught.value)


def test_permission_stops_the_climb(monkeypatch: pytest.MonkeyPatch) -> None:
    _ladder(monkeypatch, {"kprobe": PermissionMissing("no CAP_PERFMON", "run as root")})
    with pytest.raises(PermissionMissing):
        ladder.climb("auto", Path("/"), _attach_fails({}))


def test_unknown_mode() -> None:
    with pytest.raises(RawtraceError, match="unknown attach mode 'fentry'"):
        ladder.rungs("fentry")


def test_auto_passes_over_a_family_that_would_lose_events_uncounted(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def unsafe() -> str:
        return "it would lose calls without counting them"

    families = [
        ladder.Rung("kprobe", lambda tracefs: _Family("kprobe"), unsafe),
        ladder.Rung("kprobe-legacy", lambda tracefs: _Family("kprobe-legacy")),
    ]
    monkeypatch.setattr(ladder, "LADDER", tuple(families))
    choice = ladder.climb("auto", Path("/"), _attach_fails({}))
    assert choice.family == "kprobe-legacy"
    assert [(f.family, f.reason) for f in choice.failures] == [
        ("kprobe", "it would lose calls without counting them")
    ]
    assert ladder.climb("kprobe", Path("/"), _attach_fails({})).family == "kprobe"
