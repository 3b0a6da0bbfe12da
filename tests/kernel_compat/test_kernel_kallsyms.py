from __future__ import annotations

import os
import platform
from typing import TYPE_CHECKING

import pytest

from kernel_compat import (
    FeatureMissing,
    kernel_release,
    syscall_symbol,
    syscall_symbol_candidates,
)
from kernel_compat.kallsyms import _first_text_symbol, _is_text_symbol

if TYPE_CHECKING:
    from conftest import FakeRoot

KALLSYMS = (
    "ffffffff81000000 T _stext\n"
    "ffffffff81358d10 T __pfx___x64_sys_vfork\n"
    "ffffffff81358d20 T __x64_sys_vfork\n"
    "ffffffff81358d30 t __se_sys_clone3\n"
    "ffffffff82000000 D sys_open\n"
    "ffffffff81358d40 T __pfx___x64_sys_only_pfx\n"
    "ffffffff81358d50 T __x64_sys_vfork_ext\n"
    "ffffffffc0201000 t ftrace_trampoline\t[__builtin__ftrace]\n"
    "ffffffffc0300000 T sys_modcall\t[somemod]\n"
    "ffffffffc0300010 T sys_last"
)


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("__x64_sys_vfork", True),
        ("__se_sys_clone3", True),  # lower-case t: local text symbol
        ("ftrace_trampoline", True),  # module symbol with "\t[module]"
        ("sys_modcall", True),
        ("sys_last", True),  # last line without newline
        ("_stext", True),
        ("sys_open", False),  # data, not text
        ("__x64_sys_only_pfx", False),  # only the __pfx_ padding symbol exists
        ("x64_sys_vfork", False),  # a suffix of a real name
        ("__x64_sys_vfor", False),  # a prefix of a real name
        ("__builtin__ftrace", False),  # a module name, not a symbol
    ],
)
def test_is_text_symbol(name: str, expected: bool) -> None:
    assert _is_text_symbol(KALLSYMS, name) is expected


def test_is_text_symbol_at_start_of_text() -> None:
    assert not _is_text_symbol(" sys_x\n", "sys_x")
    assert _is_text_symbol("0 T sys_x\n", "sys_x")


def test_first_text_symbol_keeps_preference_order() -> None:
    text = "1 T sys_clone\n2 T __x64_sys_clone\n"
    assert _first_text_symbol(text, ("__x64_sys_clone", "sys_clone")) == "__x64_sys_clone"
    assert _first_text_symbol(text, ("__x64_sys_nope", "sys_clone")) == "sys_clone"
    assert _first_text_symbol(text, ("a", "b")) is None


@pytest.mark.parametrize(
    ("machine", "expected"),
    [
        ("x86_64", ("__x64_sys_vfork", "sys_vfork", "__se_sys_vfork")),
        # arm64 and riscv have no vfork: __arm64_sys_vfork is there for AArch32 tasks only
        ("aarch64", ()),
        ("arm64", ()),
        ("riscv64", ()),
        ("s390x", ("__s390x_sys_vfork", "sys_vfork", "__se_sys_vfork")),
        ("mips", ("sys_vfork", "__se_sys_vfork")),
    ],
)
def test_candidates(machine: str, expected: tuple[str, ...]) -> None:
    assert syscall_symbol_candidates("vfork", machine) == expected


@pytest.mark.parametrize(
    ("machine", "expected"),
    [
        ("x86_64", ("__x64_sys_clone", "sys_clone", "__se_sys_clone")),
        ("aarch64", ("__arm64_sys_clone", "sys_clone", "__se_sys_clone")),
        ("riscv64", ("__riscv_sys_clone", "sys_clone", "__se_sys_clone")),
    ],
)
def test_candidates_derive_from_the_tables_prefix(machine: str, expected: tuple[str, ...]) -> None:
    assert syscall_symbol_candidates("clone", machine) == expected


def test_compat_only_symbol_is_never_chosen(fake_root: FakeRoot) -> None:
    # An arm64 kernel with CONFIG_COMPAT has __arm64_sys_vfork, for 32-bit tasks only.
    fake_root.write(
        "/proc/kallsyms",
        "ffff800080012340 T __arm64_sys_vfork\nffff800080012350 T __arm64_sys_clone\n",
    )
    assert syscall_symbol("clone", fake_root.path, machine="aarch64") == "__arm64_sys_clone"
    with pytest.raises(FeatureMissing) as info:
        syscall_symbol("vfork", fake_root.path, machine="aarch64")
    assert str(info.value) == (
        "aarch64 has no vfork syscall (__arm64_sys_vfork serves only 32-bit compat tasks)"
    )
    with pytest.raises(FeatureMissing, match=r"riscv64 has no fork syscall$"):
        syscall_symbol("fork", fake_root.path, machine="riscv64")


def test_candidates_default_machine() -> None:
    assert syscall_symbol_candidates("vfork") == syscall_symbol_candidates(
        "vfork", platform.machine()
    )


def test_syscall_symbol_from_root(fake_root: FakeRoot) -> None:
    fake_root.write("/proc/kallsyms", KALLSYMS)
    assert syscall_symbol("vfork", fake_root.path, machine="x86_64") == "__x64_sys_vfork"
    assert syscall_symbol("clone3", fake_root.path, machine="x86_64") == "__se_sys_clone3"
    assert syscall_symbol("modcall", fake_root.path, machine="aarch64") == "sys_modcall"


def test_syscall_symbol_missing_names_tried(fake_root: FakeRoot) -> None:
    path = fake_root.write("/proc/kallsyms", KALLSYMS)
    with pytest.raises(FeatureMissing) as info:
        syscall_symbol("only_pfx", fake_root.path, machine="x86_64")
    assert str(info.value) == (
        f"no text symbol for syscall 'only_pfx' in {path}"
        " (tried __x64_sys_only_pfx, sys_only_pfx, __se_sys_only_pfx)"
    )


def test_syscall_symbol_without_kallsyms(fake_root: FakeRoot) -> None:
    with pytest.raises(FeatureMissing, match="proc/kallsyms does not exist"):
        syscall_symbol("vfork", fake_root.path)


@pytest.mark.skipif(platform.machine() != "x86_64", reason="x86_64 symbol names")
def test_real_machine_vfork() -> None:
    if not os.access("/proc/kallsyms", os.R_OK):
        pytest.skip("/proc/kallsyms is not readable")
    if not kernel_release().at_least(4, 17):
        pytest.skip("syscall wrappers (__x64_sys_*) arrived in Linux 4.17")
    assert syscall_symbol("vfork") == "__x64_sys_vfork"
    assert syscall_symbol("openat") == "__x64_sys_openat"
    with pytest.raises(FeatureMissing):
        syscall_symbol("no_such_syscall_here")
