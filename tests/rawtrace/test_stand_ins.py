"""Which syscalls feed an event on each architecture (rawtrace/events/stand_ins.py)."""

from __future__ import annotations

from types import MappingProxyType

import pytest

from bpf_bytecode import assemble, disassemble
from bpf_bytecode.programs.capture import CLONE_THREAD, CLONE_VM, ArgsInUserRegs, CloneFlags
from bpf_bytecode.programs.syscall import syscall_enter
from bpf_bytecode.programs.vfork import CLONE_VFORK
from kernel_compat import SyscallTable, syscall_table
from rawtrace.errors import KernelFeatureMissing
from rawtrace.events.catalogue import CATALOGUE
from rawtrace.events.declaring import SyscallFeed
from rawtrace.events.stand_ins import Feeding, feedings, stand_in_records

AARCH64 = syscall_table("aarch64")


@pytest.mark.parametrize(
    "event", sorted(name for name, spec in CATALOGUE.items() if isinstance(spec.feed, SyscallFeed))
)
def test_x86_64_feeds_every_syscall_event_by_its_own_syscall(event: str) -> None:
    spec = CATALOGUE[event]
    own = Feeding(spec.syscall_feed.syscall, spec.event_id)
    assert feedings(spec, syscall_table("x86_64")) == (own,)


def test_aarch64_vfork_is_the_clone_calls_with_clone_vfork() -> None:
    assert feedings(CATALOGUE["vfork"], AARCH64) == (
        Feeding("clone", 58 | 56 << 16, CloneFlags(required=CLONE_VFORK)),
        Feeding("clone3", 58 | 435 << 16, CloneFlags(required=CLONE_VFORK, in_struct=True)),
    )


def test_aarch64_fork_is_the_clone_calls_that_share_nothing() -> None:
    assert feedings(CATALOGUE["fork"], AARCH64) == (
        Feeding("clone", 57 | 56 << 16, CloneFlags(forbidden=CLONE_VM | CLONE_THREAD)),
    )


def test_the_decoder_names_the_call_that_fed_a_record() -> None:
    records = stand_in_records(AARCH64)
    assert {rid: (spec.name, call) for rid, (spec, call) in records.items()} == {
        58 | 56 << 16: ("vfork", "clone"),
        58 | 435 << 16: ("vfork", "clone3"),
        57 | 56 << 16: ("fork", "clone"),
    }
    assert stand_in_records(syscall_table("x86_64")) == {}


def test_an_event_nothing_can_feed_is_refused_in_one_line() -> None:
    table = SyscallTable("toy", MappingProxyType({"clone": 1}), absent=frozenset({"vfork"}))
    with pytest.raises(KernelFeatureMissing) as refused:
        feedings(CATALOGUE["vfork"], table)
    assert (
        str(refused.value)
        .splitlines()[0]
        .startswith("event vfork cannot be traced here: toy has no vfork syscall")
    )


def test_the_flags_check_at_entry_leaves_the_other_calls_out() -> None:
    args = ArgsInUserRegs(0, (0, 8, 16, 24, 32, 40), probe_read=4)
    plain = disassemble(assemble(syscall_enter(start_times_fd=3, args=args)))
    vfork, fork = (
        disassemble(assemble(syscall_enter(start_times_fd=3, args=args, only=only)))
        for only in (CloneFlags(required=CLONE_VFORK), CloneFlags(forbidden=CLONE_VM))
    )
    # after the first argument is read, a call with other flags exits before noting its start
    assert vfork[9:12] == [
        "   9: (79) r1 = *(u64 *)(r10 -80)",
        "  10: (57) r1 &= 16384",
        "  11: (55) if r1 != 0x4000 goto pc+11",
    ]
    assert fork[10] == "  10: (45) if r1 & 0x100 goto pc+11"
    assert "16384" not in "\n".join(plain) and "0x100" not in "\n".join(plain)
