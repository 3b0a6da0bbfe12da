"""Batches decoded into events, and events written as JSON and table rows."""

from __future__ import annotations

import io
import json
import os
import secrets
import struct
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bpf_bytecode.programs.capture import (
    ARG_SIZE,
    ARGV_MAX,
    PATH_SIZE,
    UNAVAILABLE_ARGV,
    UNAVAILABLE_PATH,
)
from bpf_bytecode.programs.record import SYSCALL_RECORD
from bpf_bytecode.programs.vfork import BLOCK, PATH_UNAVAILABLE, RELEASE, RELEASED, Cause
from kernel_compat import FeatureMissing
from kernel_compat.system.cgroups import cgroup2_mountpoint
from rawtrace.events.catalogue import BY_ID
from rawtrace.events.decoding import Decoder
from rawtrace.events.event import Arg, Event, host_name, kernel_string
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
# every kind of value the catalogue's decoders produce: argv is a tuple of strings, flags bools
values = st.one_of(
    st.none(),
    st.integers(-(2**65), 2**65),
    names,
    st.booleans(),
    st.lists(names, max_size=4).map(tuple),
)


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
    # values the template does not spell: a tuple of ints, a float
    args = (Arg("ids", "int[]", (1, 2)), Arg("ratio", "double", 0.5), Arg("s", "str", "x"))
    other = event._replace(args=args)
    assert json_line(other) == json.dumps(other.to_dict(), separators=(",", ":"))
    assert '"value":[1,2]' in json_line(other) and '"value":0.5' in json_line(other)


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


def test_table_cells_of_every_kind() -> None:
    out = io.StringIO()
    args = (
        Arg("pid", "pid_t", 99),
        Arg("argv", "const char*const*", ("a b", "c\nd")),
        Arg("ids", "int[]", (1, 2)),
        Arg("f", "bool", False),
        Arg("p", "const char*", None),
    )
    event = Event(0, 0, 0, 7, 7, 7, 7, 0, "café\t", 0, 58, "vfork", "vfork", 99, args)
    TableWriter(out).write(event)
    row = out.getvalue().splitlines()[1]
    # printable text (é too) as it is, the rest escaped; values spelled as in JSON, or repr()
    assert row[15:] == (
        '       7 café\\t           vfork           99 pid=99 argv=["a b","c\\nd"] '
        "ids=(1, 2) f=false p=null"
    )


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


def test_a_call_whose_entry_was_not_seen_has_no_start() -> None:
    # start_ts 0: the trace began between the call's entry and its exit. It stays 0 (JSON's
    # callStartTime 0), not the decoder's monotonic-to-wall offset passed off as a time
    unseen = vfork_record(10)
    unseen = unseen[:8] + bytes(8) + unseen[16:]
    seen, not_seen = Decoder().decode(Batch.of([vfork_record(11), unseen]))
    assert not_seen.call_start == 0
    assert json.loads(json_line(not_seen))["callStartTime"] == 0
    assert seen.timestamp - seen.call_start == 1_000


HOSTILE = [
    b'"},{"eventName":"forged',
    b"back\\slash\\",
    b"new\nline\r\n",
    b"\xff\xfe high bytes \xc3",
    b"\x1b[31m\x07 \xe2\x80\xa8",
]


def test_hostile_argv_and_path_make_one_line_that_round_trips() -> None:
    path = b'/tmp/"x\\\n\xff'
    record = _execve_record(path, HOSTILE, 0, ts=6_000)
    (event,) = Decoder().decode(Batch.of([record]))
    line = json_line(event)
    assert "\n" not in line and "\r" not in line and line.isascii()
    document = json.loads(line)
    assert document["args"][0]["value"] == kernel_string(path)
    assert document["args"][1]["value"] == [kernel_string(arg) for arg in HOSTILE]
    assert line == json.dumps(event.to_dict(), separators=(",", ":"))


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.binary(min_size=56, max_size=56),  # times, ids, comm
            st.sampled_from([*BY_ID, 0, 9999]),  # every event, and ids no event has
            st.binary(max_size=SYSCALL_RECORD.size - 60 + 2400),
        ),
        max_size=8,
    ),
    st.booleans(),
)
def test_the_decoder_takes_any_record_and_counts_what_it_cannot_decode(
    records: list[tuple[bytes, int, bytes]], task_context: bool
) -> None:
    # a record is anything a ring hands over: the event id where the decoder looks, the rest
    # random and of any length. Each one becomes an event or a count, never an exception
    raw = [head + struct.pack("<I", event_id) + body for head, event_id, body in records]
    decoder = Decoder(task_context=task_context)
    events = decoder.decode(Batch.of(raw))
    assert len(events) + decoder.undecodable == len(raw)
    for event in events:
        json.loads(json_line(event))


def _with(record: bytes, **fields: int) -> bytes:
    """record with some of its fixed fields replaced (ts, cgroup_id, event_id)."""
    values = list(SYSCALL_RECORD.unpack_from(record))
    names = ("ts", "start_ts", "pid_tgid", "uid_gid", "cgroup_id", "comm", "event_id")
    for name, value in fields.items():
        values[names.index(name)] = value
    return SYSCALL_RECORD.pack(*values) + record[SYSCALL_RECORD.size :]


def test_kernel_times_become_wall_clock_times() -> None:
    # the record's ts is CLOCK_MONOTONIC; the event's is the same instant on the wall clock
    # (a minute of slack: the clocks are read microseconds apart, this only tells + from -)
    now = time.monotonic_ns()
    (event,) = Decoder().decode(Batch.of([_with(vfork_record(10), ts=now, start_ts=now - 5)]))
    assert abs(event.timestamp - time.time_ns()) < 60 * 10**9
    assert event.timestamp - event.call_start == 5
    assert (event.event_id, event.event_name, event.host_name) == (58, "vfork", host_name())


def test_a_record_without_a_tail_decodes_for_an_event_that_has_none() -> None:
    fork = BY_ID[57]
    assert (fork.name, fork.tail_size) == ("fork", 0)
    record = _with(vfork_record(10), event_id=57)[: SYSCALL_RECORD.size]
    decoder = Decoder()
    (event,) = decoder.decode(Batch.of([record]))
    assert (event.event_name, event.return_value, decoder.undecodable) == ("fork", 10, 0)


@pytest.fixture
def docker_scope() -> Iterator[tuple[Path, str]]:
    """A cgroup named as docker names a container's, made for the test."""
    if os.geteuid() != 0:
        pytest.skip("making a cgroup needs root")
    try:
        hierarchy = cgroup2_mountpoint()
    except FeatureMissing as exc:
        pytest.skip(str(exc))
    container = secrets.token_hex(32)
    scope = hierarchy / f"docker-{container}.scope"
    yield scope, container
    if scope.exists():
        scope.rmdir()


def test_the_container_id_comes_from_the_cgroups_name(docker_scope: tuple[Path, str]) -> None:
    scope, container = docker_scope
    decoder = Decoder()
    unknown = _with(vfork_record(10), cgroup_id=1 << 62)  # no cgroup has this id
    # the cgroup is made after the decoder's first walk: the next batch walks again
    assert [e.container_id for e in decoder.decode(Batch.of([unknown]))] == [""]
    scope.mkdir()
    inside = _with(vfork_record(11), cgroup_id=os.stat(scope).st_ino)
    # an id new after this batch's walk is in no container (the walk is once a batch)
    other = _with(vfork_record(12), cgroup_id=1 << 61)
    events = decoder.decode(Batch.of([inside, unknown, other]))
    assert [(e.arg("pid"), e.container_id) for e in events] == [
        (11, container),
        (10, ""),
        (12, ""),
    ]
    assert events[0].to_dict()["containerId"] == container


def test_every_row_has_its_clock_whatever_second_it_is() -> None:
    out = io.StringIO()
    writer = TableWriter(out)
    for second in (1, 1, 0):  # the first row of a second, another one, an earlier second
        at = second * 10**9 + 5_000
        writer.write(Event(at, 0, 0, 1, 1, 1, 1, 0, "a", 0, 57, "fork", "fork", 2, ()))
    clocks = [row[:15] for row in out.getvalue().splitlines()[1:]]
    assert clocks == [time.strftime("%H:%M:%S", time.localtime(s)) + ".000005" for s in (1, 1, 0)]


def test_strings_whose_read_faulted_are_unavailable_not_empty() -> None:
    execve = _execve_record(b"", [], UNAVAILABLE_PATH | UNAVAILABLE_ARGV, ts=6_000)
    held = BLOCK.pack(1_000, RELEASE.pack(Cause.EXECVE | RELEASED | PATH_UNAVAILABLE, 0, b""))
    vfork, exec_event = Decoder().decode(Batch.of([execve, vfork_record(10, block=held)]))
    assert (exec_event.arg("pathname"), exec_event.arg("argv")) == (None, None)
    assert exec_event.arg("truncated") is False
    assert (vfork.arg("released_by"), vfork.arg("exec_path")) == ("execve", None)
    line = json.loads(json_line(exec_event))
    assert [arg["value"] for arg in line["args"]] == [None, None, None, False]
