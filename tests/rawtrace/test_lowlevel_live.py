"""The low-level layer (rawtrace.lowlevel): a program of one's own, built with bpf_bytecode's
builders, counting in a typed map with an atomic add and sending raw records through a ring."""

from __future__ import annotations

import os
import struct
import subprocess
import time

import pytest

from bpf_bytecode import R0, R1, R6, R10, Frame
from bpf_bytecode.asm import (
    atomic_add64,
    exit_,
    jeq_imm,
    jne_imm,
    label,
    ldxw,
    mov64_imm,
    mov64_reg,
    stw,
    stxdw,
)
from bpf_bytecode.fragments import map_lookup
from bpf_bytecode.programs.output import emit_output
from kernel_compat import read_tracepoint_format
from rawtrace import VerifierError
from rawtrace.kernel.tracefs_mount import ensure_tracefs
from rawtrace.lowlevel import MapType, ProgType, RawRing, TypedMap, attach_tracepoint, load

pytestmark = pytest.mark.live

FRAME = Frame("user")
KEY = FRAME.slot("key", 4)
RECORD = FRAME.slot("record", 8)


@pytest.mark.parametrize("transport", ["ringbuf", "perf"])
def test_a_users_program_counts_and_sends_raw_records(transport: str) -> None:
    fork = read_tracepoint_format(ensure_tracefs(), "sched", "sched_process_fork")
    parent, child = fork.field("parent_pid").offset, fork.field("child_pid").offset
    with (
        TypedMap.create(MapType.ARRAY, "<I", "<Q", 1, "forks") as forks,
        RawRing(record_size=8, transport=transport) as ring,
    ):
        code = [
            mov64_reg(R6, R1),
            ldxw(R1, R6, parent),
            jne_imm(R1, os.getpid(), "out"),
            stw(R10, KEY, 0),
            *map_lookup(forks.fileno(), KEY),
            jeq_imm(R0, 0, "out"),
            mov64_imm(R1, 1),
            atomic_add64(R0, 0, R1),
            ldxw(R1, R6, child),
            stxdw(R10, RECORD, R1),
            *emit_output(ring.output, R6, RECORD, 8),
            label("out"),
            mov64_imm(R0, 0),
            exit_(),
        ]
        with load("count_forks", ProgType.TRACEPOINT, code) as program:
            link = attach_tracepoint(program, "sched:sched_process_fork")
            children = [subprocess.Popen(["true"]) for _ in range(3)]
            for process in children:
                process.wait()
            records: list[bytes] = []
            deadline = time.monotonic() + 5
            while len(records) < 3 and time.monotonic() < deadline:
                records += ring.read()
                time.sleep(0.05)
            link.close()
        assert forks[0] == 3
        assert sorted(struct.unpack("<Q", r)[0] for r in records) == sorted(p.pid for p in children)


def test_a_users_rejected_program_carries_the_log_and_blames_no_one_else() -> None:
    with pytest.raises(VerifierError) as caught:
        load("bad", ProgType.TRACEPOINT, [mov64_reg(R0, R6), exit_()])
    assert "R6 !read_ok" in caught.value.log
    assert "rawtrace bug" not in str(caught.value)
