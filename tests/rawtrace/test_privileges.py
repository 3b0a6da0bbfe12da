"""The diagnosis of a refusal, from the settings as a fake /proc, /sys and securityfs hold them."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest

from rawtrace.kernel.privileges import Refused, refusal

EPERM = OSError(errno.EPERM, os.strerror(errno.EPERM))
ALL_CAPS = "000001ffffffffff"
BPF_AND_PERFMON = f"{1 << 38 | 1 << 39:016x}"
NO_CAPS = "0000000000000000"


def settings(
    root: Path,
    *,
    caps: str = ALL_CAPS,
    release: str = "6.18.0",
    unprivileged_bpf_disabled: int = 2,
    paranoid: int = 2,
    lockdown: str | None = "[none] integrity confidentiality",
    memlock: str = "8388608",
) -> Path:
    """A root laid out like / for the readers, holding these settings."""
    files = {
        "proc/self/status": f"Name:\tpython3\nCapEff:\t{caps}\n",
        "proc/sys/kernel/osrelease": f"{release}\n",
        "proc/sys/kernel/unprivileged_bpf_disabled": f"{unprivileged_bpf_disabled}\n",
        "proc/sys/kernel/perf_event_paranoid": f"{paranoid}\n",
        "proc/self/limits": f"Max locked memory         {memlock:<20} {memlock:<20} bytes\n",
    }
    if lockdown is not None:
        files["sys/kernel/security/lockdown"] = f"{lockdown}\n"
    for path, text in files.items():
        (root / path).parent.mkdir(parents=True, exist_ok=True)
        (root / path).write_text(text)
    return root


def message(refused: Refused, root: Path) -> str:
    text = str(refusal("it", EPERM, refused, root))
    assert "\n" not in text
    assert text.startswith("the kernel refused it (Operation not permitted): ")
    return text


@pytest.mark.parametrize("refused", [Refused.PERF_EVENT, Refused.TRACEFS])
def test_lockdown_for_confidentiality_is_named_even_for_root(
    tmp_path: Path, refused: Refused
) -> None:
    root = settings(tmp_path, lockdown="none integrity [confidentiality]")
    text = message(refused, root)
    assert "locked down for confidentiality (/sys/kernel/security/lockdown)" in text
    assert "boot without lockdown=confidentiality" in text


def test_lockdown_for_integrity_is_not_the_cause(tmp_path: Path) -> None:
    root = settings(tmp_path, lockdown="none [integrity] confidentiality")
    text = message(Refused.PERF_EVENT, root)
    assert "lockdown" not in text
    assert "no kernel setting explains it" in text


def test_unprivileged_bpf_disabled_is_named_for_a_process_without_cap_bpf(
    tmp_path: Path,
) -> None:
    root = settings(tmp_path, caps=NO_CAPS, unprivileged_bpf_disabled=2)
    text = message(Refused.BPF, root)
    assert "kernel.unprivileged_bpf_disabled is 2" in text
    assert "this one lacks CAP_BPF and CAP_PERFMON" in text
    assert "sudo" in text


def test_without_the_sysctl_the_missing_capabilities_are_the_cause(tmp_path: Path) -> None:
    root = settings(tmp_path, caps=NO_CAPS, unprivileged_bpf_disabled=0)
    text = message(Refused.BPF, root)
    assert "this process lacks CAP_BPF and CAP_PERFMON (or CAP_SYS_ADMIN)" in text
    assert "unprivileged_bpf_disabled" not in text


def test_perf_event_paranoid_is_named_for_a_process_without_cap_perfmon(tmp_path: Path) -> None:
    root = settings(tmp_path, caps=NO_CAPS, paranoid=3)
    text = message(Refused.PERF_EVENT, root)
    assert "kernel.perf_event_paranoid is 3" in text
    assert "give it CAP_PERFMON" in text


def test_paranoid_minus_one_leaves_the_missing_capability(tmp_path: Path) -> None:
    root = settings(tmp_path, caps=NO_CAPS, paranoid=-1)
    text = message(Refused.PERF_EVENT, root)
    assert "this process lacks CAP_PERFMON (or CAP_SYS_ADMIN)" in text


@pytest.mark.parametrize("caps", [BPF_AND_PERFMON, f"{1 << 21:016x}"])  # or CAP_SYS_ADMIN alone
def test_a_capable_process_is_not_told_to_get_capabilities(tmp_path: Path, caps: str) -> None:
    root = settings(tmp_path, caps=caps, unprivileged_bpf_disabled=2, paranoid=3)
    for refused in (Refused.BPF, Refused.PERF_EVENT):
        text = message(refused, root)
        assert "sysctl" not in text and "lacks" not in text
        assert "this process holds the capabilities it needs" in text


def test_memlock_before_5_11_names_the_limit_and_the_fix(tmp_path: Path) -> None:
    root = settings(tmp_path, release="5.10.0-30-amd64", memlock="65536")
    text = message(Refused.BPF, root)
    assert "RLIMIT_MEMLOCK" in text
    assert "this process's limit is 64 KiB" in text
    assert "ulimit -l unlimited" in text


@pytest.mark.parametrize(("release", "memlock"), [("5.10.0", "unlimited"), ("5.11.0", "65536")])
def test_memlock_is_not_the_cause_when_unlimited_or_not_charged(
    tmp_path: Path, release: str, memlock: str
) -> None:
    root = settings(tmp_path, release=release, memlock=memlock)
    assert "RLIMIT_MEMLOCK" not in message(Refused.BPF, root)


def test_tracefs_without_lockdown_asks_for_root(tmp_path: Path) -> None:
    root = settings(tmp_path, lockdown=None)
    assert "tracefs is root's; run it as root" in message(Refused.TRACEFS, root)


def test_settings_that_cannot_be_read_leave_their_rules_out(tmp_path: Path) -> None:
    text = message(Refused.BPF, tmp_path)  # an empty root: nothing is known
    assert text.endswith(
        "no kernel setting explains it: a security module (SELinux, AppArmor, seccomp) or a "
        "container's user namespace may forbid it; run rawtrace as root on the host, outside "
        "containers and confining profiles"
    )
