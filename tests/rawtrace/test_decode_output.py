"""Batches decoded into events, and events written as JSON and table rows."""

from __future__ import annotations

import io
import json
import os
import struct

from hypothesis import given, settings
from hypothesis import strategies as st

from bpf_bytecode.programs.capture import ARG_SIZE, ARGV_MAX, PATH_SIZE
from bpf_bytecode.programs.record import SYSCALL_RECORD
from bpf_bytecode.programs.vfork import BLOCK, RELEASE, RELEASED, Cause
from rawtrace.events.decoding import Decoder
from rawtrace.events.event import Arg, Event
from rawtrace.outputs.formats import TableWriter, json_line
from rawtrace.transports.batch import Batch

# host_ppid, ns_pid, ns_tid, ns_ppid, mnt_ns, pid_ns: a caller seen as 7/8 in its namespace
TASK_FIELDS = (50, 7, 8, 5, 4026531832, 4026531836)


def vfork_record(
    child: int, comm: bytes = b"sh", event_id: int = 58, block: bytes = bytes(BLOCK.size)
) -> bytes:
    """A vfork parent's record; its tail is the hold `block` (by default: held nothing)."""
    fields = (5_000, 4_000, (77 << 32) | 78, (100 << 32) | 1000, 9, comm, event_id, 1)
    return SYSCALL_RECORD.pack(*fields, *TASK_FIELDS, child) + block


def test_a_hold_decodes_to_its_time_and_what_released_it() -> None:
    held = [
        BLOCK.pack(1_000, RELEASE.pack(Cause.EXECVE | RELEASED, 0, b"/bin/true")),
        BLOCK.pack(2_000, RELEASE.pack(Cause.EXIT, 7, b"stale")),
        BLOCK.pack(3_000, RELEASE.pack(Cause.SIGNAL, 15, b"")),
        BLOCK.pack(4_000, RELEASE.pack(Cause.UNKNOWN, 15, b"")),
    ]
    events = Decoder().decode(Batch.of([vfork_record(10 + i, block=b) for i, b in enumerate(held)]))
    hold_args = ("hold_ns", "released_by", "exec_path", "exit_code", "signal_code")
    assert [tuple(e.arg(name) for name in hold_args) for e in events] == [
        (1_000, "execve", "/bin/true", None, None),
        (2_000, "exit", None, 7, None),
        (3_000, "signal", None, None, 15),
        (4_000, "unknown", None, None, None),
    ]


def test_a_record_shorter_than_its_events_tail_is_counted_not_decoded() -> None:
    decoder = Decoder()
    assert decoder.decode(Batch.of([vfork_record(10, block=b"")])) == []
    assert decoder.undecodable == 1


def test_a_uniform_batch_decodes_like_one_of_mixed_sizes() -> None:
    records = [vfork_record(c) for c in (10, 11, 12)]
    padded = Batch.of([r + b"\0\0\0\0" for r in records])  # perf pads each payload
    mixed = Batch.of([records[0] + b"\0" * 4, records[1], records[2] + b"\0" * 12])
    decoder = Decoder()
    uniform_events, mixed_events = decoder.decode(padded), decoder.decode(mixed)
    assert uniform_events == mixed_events
    assert [(e.process_id, e.thread_id, e.user_id, e.arg("pid")) for e in uniform_events] == [
        (7, 8, 1000, child) for child in (10, 11, 12)
    ]
    first = uniform_events[0]
    assert first.timestamp - first.call_start == 1_000
    assert (first.process_name, first.cgroup_id, first.processor_id) == ("sh", 9, 1)
    assert decoder.undecodable == 0


def test_task_fields_map_to_tracee_keys() -> None:
    (event,) = Decoder().decode(Batch.of([vfork_record(10)]))
    assert (event.process_id, event.thread_id, event.parent_process_id) == (7, 8, 5)
    assert (event.host_process_id, event.host_thread_id, event.host_parent_process_id) == (
        77,
        78,
        50,
    )
    assert (event.mount_namespace, event.pid_namespace) == (4026531832, 4026531836)


def test_without_btf_the_ids_are_the_hosts() -> None:
    (event,) = Decoder(task_context=False).decode(Batch.of([vfork_record(10)]))
    assert (event.process_id, event.thread_id) == (77, 78)


def test_short_and_unknown_records_are_counted_not_decoded() -> None:
    decoder = Decoder()
    batch = Batch.of([b"short", vfork_record(5, event_id=9999), vfork_record(6)])
    assert [e.arg("pid") for e in decoder.decode(batch)] == [6]
    assert decoder.undecodable == 2


def test_failed_vfork_has_no_child_and_comm_keeps_odd_bytes() -> None:
    (event,) = Decoder().decode(Batch.of([vfork_record(-11, comm=b"a\xffb\0junk")]))
    assert (event.return_value, event.arg("pid"), event.process_name) == (-11, 0, "a\udcffb")
    assert os.fsencode(event.process_name) == b"a\xffb"  # the kernel's bytes, back


def test_a_byte_that_is_not_utf8_and_text_spelling_its_escape_print_differently() -> None:
    byte, text = (
        Decoder().decode(Batch.of([vfork_record(1, comm=comm)]))[0]
        for comm in (b"a\xff", b"a\\xff")
    )
    assert byte.process_name != text.process_name
    assert json_line(byte) != json_line(text)
    assert json.loads(json_line(byte))["processName"] == "a\udcff"
    assert json.loads(json_line(text))["processName"] == "a\\xff"
    rows = []
    for event in (byte, text):
        out = io.StringIO()
        TableWriter(out).write(event)
        rows.append(out.getvalue().splitlines()[1].split()[2])
    assert rows == ["a\\udcff", "a\\\\xff"]


names = st.text(st.characters(), max_size=20)
ints = st.integers(-(2**70), 2**70)
values = st.one_of(st.none(), st.integers(-(2**65), 2**65), names)


@settings(max_examples=300, deadline=None)
@given(
    st.lists(ints, min_size=12, max_size=12),
    names,
    names,
    names,
    st.lists(st.tuples(names, names, values), max_size=3),
    st.integers(0, 2**32),
)
def test_json_line_is_json_dumps_character_for_character(
    numbers: list[int],
    process_name: str,
    event_name: str,
    host_name: str,
    args: list[tuple[str, str, int | str | None]],
    event_id: int,
) -> None:
    event = Event(
        *numbers[:8],
        process_name,
        numbers[8],
        event_id,
        event_name,
        "vfork",
        numbers[9],
        tuple(Arg(*a) for a in args),
        mount_namespace=numbers[10],
        pid_namespace=numbers[11],
        host_name=host_name,
        container_id="c\u2028\x1b",
    )
    assert json_line(event) == json.dumps(event.to_dict(), separators=(",", ":"))


def test_json_line_takes_the_general_path_for_other_values() -> None:
    event = Event(
        1, 2, 0, 3, 3, 3, 3, 0, "x", 0, 58, "vfork", "vfork", 0, (Arg("f", "bool", True),)
    )
    assert json_line(event) == json.dumps(event.to_dict(), separators=(",", ":"))
    assert '"value":true' in json_line(event)


def test_table_rows_line_up() -> None:
    out = io.StringIO()
    writer = TableWriter(out)
    event = Event(
        1_700_000_000_123_456_789, 0, 0, 4242, 4242, 4242, 4242, 0, "a\nb", 0, 58, "vfork",
        "vfork", 99, (Arg("pid", "pid_t", 99),),
    )  # fmt: skip
    writer.write(event)
    writer.write(event._replace(timestamp=event.timestamp + 1_000_000_000))
    _header, first, second = out.getvalue().splitlines()
    assert first[15:] == "    4242 a\\nb             vfork           99 pid=99"
    assert len(first) == len(second) and first[:15] != second[:15]
    assert first[8:15] == second[8:15] == ".123456"


def _execve_record(path: bytes, argv: list[bytes], truncated: int, ts: int) -> bytes:
    argc_flags = struct.pack("<II", len(argv), truncated)
    slots = b"".join(arg.ljust(ARG_SIZE, b"\0") for arg in argv).ljust(ARGV_MAX * ARG_SIZE, b"\0")
    tail = bytes(24) + argc_flags + path.ljust(PATH_SIZE, b"\0") + slots
    fields = (ts, 4_000, (77 << 32) | 78, (100 << 32) | 1000, 9, b"sh", 59, 1)
    return SYSCALL_RECORD.pack(*fields, *TASK_FIELDS, 0) + tail


def test_records_of_several_sizes_decode_in_time_order_with_their_tails() -> None:
    execve = _execve_record(b"/bin/sh", [b"sh", b"-c", b"x"], 2, ts=6_000)
    batch = Batch.of([execve + b"\0" * 4, vfork_record(10) + b"\0" * 4])
    first, second = Decoder().decode(batch)
    assert (first.event_name, second.event_name) == ("vfork", "execve")
    assert [a.value for a in second.args] == ["/bin/sh", ("sh", "-c", "x"), None, True]
    line = json.loads(json_line(second))
    assert line["args"][1] == {
        "name": "argv",
        "type": "const char*const*",
        "value": ["sh", "-c", "x"],
    }
    assert line["args"][3]["value"] is True
