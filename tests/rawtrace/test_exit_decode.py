"""The exit event's records as each feed sends them: the tracepoint's wait status, or (without
BTF) exit_group()'s argument."""

from __future__ import annotations

import struct

import pytest

from bpf_bytecode.programs.record import SYSCALL_RECORD
from rawtrace.events.decoding import Decoder
from rawtrace.transports.batch import Batch


def exit_record(slot: int) -> bytes:
    """An exit record from a host task outside any cgroup v2 directory (cgroup id 1: none)."""
    fields = (5_000, 0, (77 << 32) | 78, 0, 1, b"sh", 60, 0, 1, 77, 78, 1, 2, 3, 0)
    return SYSCALL_RECORD.pack(*fields) + struct.pack("<q", slot)


@pytest.mark.parametrize(
    ("status", "args"),
    [
        (7 << 8, (7, 0, False)),  # exit(7)
        (9, (0, 9, False)),  # SIGKILL
        (0x80 | 6, (0, 6, True)),  # SIGABRT, core dumped
    ],
)
def test_the_tracepoint_tail_is_a_wait_status(status: int, args: tuple[object, ...]) -> None:
    (event,) = Decoder().decode(Batch.of([exit_record(status)]))
    assert (event.event_name, event.syscall, event.return_value) == ("exit", "", 0)
    assert tuple(a.value for a in event.args) == args
    assert [a.name for a in event.args] == ["exit_code", "signal_code", "core_dumped"]


def test_without_btf_the_tail_is_exit_groups_argument() -> None:
    # exit_group(-1), sign-extended in its register: the parent sees 255, and no signal is known
    (event,) = Decoder(task_context=False).decode(Batch.of([exit_record(-1)]))
    assert (event.syscall, tuple(a.value for a in event.args)) == ("exit_group", (255, -1, None))
