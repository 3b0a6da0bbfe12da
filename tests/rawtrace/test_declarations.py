"""Declarations: the kinds of a record's tail, the layout they make, and an event from a C
prototype (rawtrace/events/declaring.py, kinds.py). No kernel here."""

from __future__ import annotations

import struct

import pytest

from bpf_bytecode.programs.capture import PATH_SIZE, Capture, ExecStrings, FirstU64, UserString
from rawtrace import RawtraceError
from rawtrace.events.arg_kinds import ExecBlock, FirstU64Kind, HoldBlock, Int, Pointer, UserStr
from rawtrace.events.catalogue import CATALOGUE, CLONE3, EXECVE
from rawtrace.events.declaring import ArgSpec, syscall_event


def test_the_layout_says_offset_kind_and_size_of_every_field() -> None:
    placed = [(f.offset, f.size, f.kind, f.names) for f in CLONE3.layout.fields]
    assert placed == [
        (0, 8, Pointer(), ("cl_args",)),
        (8, 8, Int(8, signed=False), ("size",)),
        (16, 16, FirstU64Kind(), ("flags",)),
        (
            32,
            272,
            HoldBlock(flag=True),
            ("vfork", "hold_ns", "released_by", "exec_path", "exit_code", "signal_code"),
        ),
    ]
    assert CLONE3.capture == Capture(2, (FirstU64(),))
    assert EXECVE.capture == Capture(3, (ExecStrings(0, 1),))
    assert [f.kind for f in EXECVE.layout.fields][3] == ExecBlock(0, 1)


def test_each_events_tail_size_is_its_layouts() -> None:
    for spec in CATALOGUE.values():
        assert spec.tail_size == sum(f.size for f in spec.layout.fields), spec.name
        if spec.capture is not None:
            assert spec.capture.size <= spec.tail_size, spec.name


def test_an_int_and_a_string_arg_are_one_declaration() -> None:
    # with openat's line in the syscall tables, that is all a built-in event needs
    spec = syscall_event("openat", [("dirfd", "int"), ("pathname", "const char*")])
    assert (spec.name, spec.event_id, spec.syscall_feed.syscall) == ("openat", 257, "openat")
    assert [(a.name, a.type) for a in spec.args] == [
        ("dirfd", "int"),
        ("pathname", "const char*"),
        ("truncated", "bool"),
    ]
    assert spec.capture == Capture(2, (UserString(1, PATH_SIZE),))
    assert [f.kind for f in spec.layout.fields] == [Int(4, signed=True), Pointer(), UserStr(1)]
    tail = struct.pack("<qQII", -100, 0x1000, 0, 0) + b"/etc/hosts".ljust(PATH_SIZE, b"\0")
    assert spec.decode_args(3, tail) == (-100, "/etc/hosts", False)
    unread = struct.pack("<qQII", 5, 0x1000, 8, 0) + bytes(PATH_SIZE)  # UNAVAILABLE_PATH
    assert spec.decode_args(3, unread) == (5, None, False)
    cut = struct.pack("<qQII", 5, 0x1000, 1, 0) + b"x" * (PATH_SIZE - 1) + b"\0"
    assert spec.decode_args(3, cut) == (5, "x" * (PATH_SIZE - 1), True)


@pytest.mark.parametrize(
    ("c_type", "kind"),
    [
        ("int", Int(4, signed=True)),
        ("unsigned long", Int(8)),
        ("pid_t", Int(4, signed=True)),
        ("u16", Int(2)),
        ("void *", Pointer()),
        ("struct stat*", Pointer()),
    ],
)
def test_c_types_pick_their_kinds(c_type: str, kind: object) -> None:
    spec = syscall_event("execve", [("x", c_type)])
    assert spec.layout.fields[0].kind == kind
    assert spec.args == (ArgSpec("x", c_type),)


def test_bad_declarations_say_why() -> None:
    with pytest.raises(RawtraceError, match="unknown C type 'float'"):
        syscall_event("execve", [("x", "float")])
    with pytest.raises(RawtraceError, match=r"syscall_tables\.py"):
        syscall_event("no_such_call", [])
    with pytest.raises(RawtraceError, match="at most 6"):
        syscall_event("execve", [(f"a{i}", "int") for i in range(7)])
