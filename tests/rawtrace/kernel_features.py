"""Whether a live test may expect a kernel feature, decided from the kernel alone, in the manner of
cilium/ebpf's testutils checkVersion / SkipIfNotSupported: skip on a kernel older than the
feature's first release, or built without an option it needs (read from the kernel's config, or
for kprobes from sysfs and tracefs, never from rawtrace's own discovery); FAIL when the kernel is
new enough and built with it, yet the feature's probe says it is missing."""

from __future__ import annotations

from pathlib import Path

import pytest

from kernel_compat import KernelFactError, find_tracefs, kernel_config, kernel_release
from rawtrace.kernel.feature_probes import FeatureProbe, feature

_KPROBE_PMU = Path("/sys/bus/event_source/devices/kprobe")


def require_feature(name: str) -> None:
    """Skip the test unless the kernel should have feature `name`; fail if it should and lacks
    it ("ringbuf", "perf_link", "attach:kprobe": rawtrace.kernel.feature_probes)."""
    if not expect_feature(name):
        pytest.skip(f"{name}: {_why_not_expected(feature(name))}")


def expect_feature(name: str) -> bool:
    """Whether the kernel should have feature `name`; where it should, its probe must agree or
    the test fails."""
    fact = feature(name)
    if _why_not_expected(fact):
        return False
    if not fact.probe():
        pytest.fail(
            f"{name}: Linux {kernel_release()} is new enough for {fact.description} and built "
            f"with {', '.join('CONFIG_' + c for c in fact.config) or 'what it needs'}, "
            "yet the probe says it is missing"
        )
    return True


def _why_not_expected(fact: FeatureProbe) -> str:
    """Why the running kernel may lack `fact` ("" when it should have it)."""
    if fact.since is None:
        raise AssertionError(f"feature {fact.name} does not say which release brought it")
    release = kernel_release()
    if not release.at_least(*fact.since):
        return f"{fact.description} needs Linux {fact.since[0]}.{fact.since[1]}; this is {release}"
    return _built_without(fact.config)


def _built_without(options: tuple[str, ...]) -> str:
    try:
        config = kernel_config()
    except KernelFactError:
        config = None
    if config is not None:
        missing = [option for option in options if not config.enabled(option)]
        if missing:
            return f"this kernel was built without CONFIG_{missing[0]} ({config.source})"
        return ""
    if "KPROBES" in options and not _kprobes_seen():
        return (
            f"this kernel shows no kprobes: no {_KPROBE_PMU} and no kprobe_events in tracefs "
            "(its config cannot be read)"
        )
    return ""


def _kprobes_seen() -> bool:
    if _KPROBE_PMU.exists():
        return True
    try:
        return (find_tracefs() / "kprobe_events").exists()
    except KernelFactError:
        return False
