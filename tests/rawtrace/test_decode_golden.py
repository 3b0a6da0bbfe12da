"""Every event's records decoded to JSON, pinned in tests/rawtrace/golden/decoded.jsonl.

The records are built here byte by byte, as the programs send them (record.py's context, then
each event's tail), independently of the catalogue's declarations: when the declarations
change how they describe a record, the output must not change. After an intended change to
the output, rewrite the file with DECODE_GOLDEN_UPDATE=1 and read the diff.
"""

from __future__ import annotations

import json
import os
import struct
from pathlib import Path

import pytest

from rawtrace.events.decoding import Decoder
from rawtrace.outputs.formats import json_line
from rawtrace.transports.batch import Batch

GOLDEN = Path(__file__).parent / "golden" / "decoded.jsonl"
UPDATE = os.environ.get("DECODE_GOLDEN_UPDATE") == "1"

CONTEXT = struct.Struct("<QQQQQ16sIIIIIIIIq")  # record.py's layout, spelled out
PATH, ARGV, ARG = 256, 16, 128
RELEASED, PATH_UNAVAILABLE = 0x100, 0x200
EXECVE, EXECVEAT, EXIT, SIGNAL = 1, 2, 3, 4


def record(event_id: int, ret: int, tail: bytes = b"", comm: bytes = b"sh") -> bytes:
    fields = (9_000, 8_000, (77 << 32) | 78, (100 << 32) | 1000, 1, comm, event_id, 1)
    return CONTEXT.pack(*fields, 50, 7, 8, 5, 4026531832, 4026531836, ret) + tail


def block(hold_ns: int, cause: int = 0, code: int = 0, path: bytes = b"") -> bytes:
    """vfork.py's BLOCK: hold_ns, then the RELEASE (cause, code, path)."""
    return struct.pack(f"<QIi{PATH}s", hold_ns, cause, code, path)


def strings(path: bytes, argv: list[bytes], flags: int = 0) -> bytes:
    """capture.py's exec strings block: argc, flags, the path, ARGV slots."""
    slots = b"".join(a.ljust(ARG, b"\0") for a in argv).ljust(ARGV * ARG, b"\0")
    return struct.pack("<II", len(argv), flags) + path.ljust(PATH, b"\0") + slots


def u64s(*values: int) -> bytes:
    return struct.pack(f"<{len(values)}q", *values)


CLONE_ARGS = u64s(0x4111, 0x7F00, 0x7F10, 0x7F20, 0x7F30)
CLONE3_ARGS = u64s(0x7FFE00, 88)
EXECVEAT_RAW = u64s(-100, 0x5000, 0x6000, 0x7000, 0x1000)

CASES: dict[str, tuple[bytes, bool]] = {
    "fork": (record(57, 4242), True),
    "fork_failed": (record(57, -11), True),
    "vfork_held_nothing": (record(58, 4242, block(0)), True),
    "vfork_failed": (record(58, -11, block(0)), True),
    "vfork_exec": (record(58, 4242, block(1_000, EXECVE | RELEASED, 0, b"/bin/true")), True),
    "vfork_execveat": (record(58, 4242, block(1_000, EXECVEAT | RELEASED, 0, b"/x")), True),
    "vfork_exit": (record(58, 4242, block(2_000, EXIT, 3, b"stale")), True),
    "vfork_signal": (record(58, 4242, block(3_000, SIGNAL, 9)), True),
    "vfork_unknown": (record(58, 4242, block(4_000, 0, 15)), True),
    "vfork_path_unread": (
        record(58, 4242, block(5_000, EXECVE | RELEASED | PATH_UNAVAILABLE)),
        True,
    ),
    "vfork_no_btf": (record(58, 4242, block(0)), False),
    "clone_no_hold": (record(56, 4242, CLONE_ARGS + block(0)), True),
    "clone_held": (record(56, 4242, CLONE_ARGS + block(6_000, EXIT | 0, 0)), True),
    "clone3_read": (record(435, 4242, CLONE3_ARGS + u64s(0x3D0F00, 1) + block(0)), True),
    "clone3_unread": (record(435, 4242, CLONE3_ARGS + u64s(0, 0) + block(0)), True),
    "clone3_held": (
        record(435, 4242, CLONE3_ARGS + u64s(0x4000, 1) + block(7_000, EXECVE, 0, b"/bin/sh")),
        True,
    ),
    "execve": (
        record(59, 0, u64s(0x1000, 0x2000, 0x3000) + strings(b"/bin/ls", [b"ls", b"-l"])),
        True,
    ),
    "execve_truncated": (
        record(59, 0, u64s(0x1000, 0x2000, 0x3000) + strings(b"/bin/ls", [b"x" * 127], 6)),
        True,
    ),
    "execve_unavailable": (
        record(59, -14, u64s(0x1000, 0x2000, 0x3000) + strings(b"", [], 8 | 16)),
        True,
    ),
    "execve_odd_bytes": (
        record(59, -2, u64s(1, 2, 3) + strings(b'/tmp/\xff"q', [b"a\nb", b""]), b"a\xffb"),
        True,
    ),
    "execveat": (record(322, 0, EXECVEAT_RAW + strings(b"", [b"true", b"at"])), True),
    "exit_tracepoint": (record(60, 0, u64s(7 << 8)), True),
    "exit_signal_core": (record(60, 0, u64s(0x80 | 6)), True),
    "exit_group_no_btf": (record(60, 0, u64s(-1)), False),
    "sched_process_exec": (
        record(715, 0, strings(b"/bin/true", [b"true", b"x"]), b"true"),
        True,
    ),
    "sched_process_exec_no_argv": (record(715, 0, strings(b"/bin/true", [], 16)), False),
}


def _decoded(name: str) -> str:
    data, task_context = CASES[name]
    decoder = Decoder(task_context)
    decoder.monotonic_to_wall = 1_700_000_000_000_000_000  # a fixed wall clock
    decoder._containers[1] = ""  # cgroup 1 is in no container: no walk of the host's cgroups
    events = decoder.decode(Batch.of([data + b"\0" * 4]))  # perf's padding, as the rings send
    assert decoder.undecodable == 0 and len(events) == 1, name
    # the host's name is this machine's, not the decoder's: pinned as the golden text has it
    return json_line(events[0]._replace(host_name=""))


def _golden() -> dict[str, str]:
    if not GOLDEN.exists():
        return {}
    return {
        entry["case"]: entry["line"] for entry in map(json.loads, GOLDEN.read_text().splitlines())
    }


@pytest.mark.parametrize("name", sorted(CASES))
def test_decoded_output_is_pinned(name: str) -> None:
    line = _decoded(name)
    if UPDATE:
        golden = {**_golden(), name: line}
        GOLDEN.write_text(
            "".join(json.dumps({"case": k, "line": golden[k]}) + "\n" for k in sorted(golden))
        )
    assert _golden().get(name) == line, f"{name}: run with DECODE_GOLDEN_UPDATE=1 and read the diff"
