"""Every syscall number rawtrace uses derives from kernel_compat's one table per architecture:
the numbers its FFI calls, and Tracee's event ids (the x86_64 numbers, whatever the machine)."""

from __future__ import annotations

from kernel_compat import syscall_number, syscall_table
from rawtrace.events.catalogue import CATALOGUE, EXIT
from rawtrace.events.declaring import SyscallFeed
from rawtrace.kernel import ffi


def test_ffi_calls_the_tables_numbers() -> None:
    assert syscall_number("bpf") == ffi._NR_BPF
    assert syscall_number("perf_event_open") == ffi._NR_PERF_EVENT_OPEN


def test_syscall_event_ids_are_the_x86_64_numbers() -> None:
    x86_64 = syscall_table("x86_64")
    for name, spec in CATALOGUE.items():
        if spec is EXIT or not isinstance(spec.feed, SyscallFeed):
            continue
        assert spec.event_id == x86_64.number(spec.syscall_feed.syscall) == x86_64.number(name), (
            name
        )
    # exit is fed by exit_group (or sched_process_exit) but keeps Tracee's id, exit's number
    assert EXIT.event_id == x86_64.number("exit") == 60
    # sched_process_exec, fed only by its tracepoint, takes Tracee's SchedProcessExec id
    assert {spec.event_id for spec in CATALOGUE.values()} == {
        56,
        57,
        58,
        59,
        60,
        322,
        435,
        715,
        50058,
    }
