"""(5) What an in-kernel filter costs a traced workload: the vfork storm of another process
untraced; with empty programs on the same tracepoints (the floor: what any BPF tracer hooked
there costs); under `rawtrace trace vfork --pid` of an idle process (every vfork runs the
programs, none reaches a ring); and under an unfiltered `rawtrace trace vfork`.

All on the tracepoint family (what auto mode takes where there are no kprobes), interleaved in
each round; the table gives medians and ratios from this one run. Besides the storm's rate it
gives the storm's CPU time per vfork (its own and its children's): the programs run in the
storm's system calls, and CPU time shows their cost even where neighbours take the CPUs away.
"""

from __future__ import annotations

import os
import re
import signal
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from bench_report import Table, publish
from storm import build_storm, start_storms

ROOT = Path(__file__).resolve().parent.parent
SECONDS = float(os.environ.get("RAWTRACE_STORM_SECONDS", "3"))
ROUNDS = int(os.environ.get("RAWTRACE_STORM_ROUNDS", "3"))

# The floor: one program that returns at once, on both of vfork's tracepoints, attached the way
# rawtrace's tracepoint family attaches its own.
EMPTY_PROGRAMS = """
import signal, sys
from bpf_bytecode import Reg
from bpf_bytecode.asm import exit_, mov64_imm
from rawtrace.attach.tracepoint import attach_tracepoint
from rawtrace.kernel.bpf import ProgType
from rawtrace.kernel.loading import load_program
from rawtrace.kernel.tracefs_mount import ensure_tracefs

signal.signal(signal.SIGINT, lambda signum, frame: None)
tracefs = ensure_tracefs()
with load_program("empty", ProgType.TRACEPOINT, [mov64_imm(Reg.R0, 0), exit_()]) as program:
    links = [attach_tracepoint(program, tracefs, "syscalls", f"sys_{side}_vfork")
             for side in ("enter", "exit")]
    print("empty programs attached", file=sys.stderr, flush=True)
    signal.pause()
    for link in links:
        link.close()
"""
RAWTRACE = [sys.executable, "-m", "rawtrace", "trace", "vfork", "--attach=tracepoint"]
CONFIGURATIONS = ("untraced", "empty programs", "--pid of an idle process", "unfiltered")


@pytest.fixture(scope="module")
def storm(tmp_path_factory: pytest.TempPathFactory) -> Path:
    try:
        return build_storm(tmp_path_factory.mktemp("storm"), os.environ.get("CC", "gcc"))
    except (OSError, subprocess.CalledProcessError) as exc:
        pytest.skip(f"cannot build the vfork storm: {exc}")


@pytest.fixture
def idle() -> Iterator[int]:
    process = subprocess.Popen(["sleep", "3600"])
    yield process.pid
    process.kill()
    process.wait()


class Running:
    """A tracer process, started and awaited until attached; stop() ends it with SIGINT and
    returns its CPU seconds and what it printed on stderr. Output goes to files in memory."""

    def __init__(self, command: list[str], marker: str, workdir: Path) -> None:
        self.out, self.err = workdir / "out", workdir / "err"
        with open(self.out, "w") as out, open(self.err, "w") as err:
            self.process = subprocess.Popen(
                command,
                cwd=ROOT,
                stdout=out,
                stderr=err,
                # a benchmark run from a background job inherits SIGINT ignored
                preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
            )
        started = time.monotonic()
        while marker not in self.err.read_text():
            if self.process.poll() is not None or time.monotonic() - started > 30:
                raise RuntimeError(f"{command} did not attach: {self.err.read_text()}")
            time.sleep(0.01)

    def stop(self) -> tuple[float, str]:
        self.process.send_signal(signal.SIGINT)
        _, status, usage = os.wait4(self.process.pid, 0)
        self.process.returncode = os.waitstatus_to_exitcode(status)
        assert self.process.returncode == 0, self.err.read_text()
        return usage.ru_utime + usage.ru_stime, self.err.read_text()


def run_storm(storm: Path) -> tuple[int, float, float]:
    """One storm for SECONDS: its vforks, its vforks per second, and its CPU microseconds per
    vfork."""
    (run,) = start_storms(storm, 1, SECONDS)
    assert run.stdout is not None
    with run.stdout:
        out = run.stdout.read()
    _, status, usage = os.wait4(run.pid, 0)  # its rusage includes its reaped children's
    run.returncode = os.waitstatus_to_exitcode(status)
    count, elapsed = (float(word) for word in out.split())
    return int(count), count / elapsed, (usage.ru_utime + usage.ru_stime) / count * 1e6


def _command(name: str, idle: int) -> tuple[list[str], str] | None:
    if name == "empty programs":
        return [sys.executable, "-c", EMPTY_PROGRAMS], "empty programs attached"
    if name == "--pid of an idle process":
        return [*RAWTRACE, f"--pid={idle}", "-o", os.devnull], "rawtrace: tracing"
    if name == "unfiltered":
        return [*RAWTRACE, "-o", os.devnull], "rawtrace: tracing"
    return None


def test_filter_cost(benchmark: Any, root: None, storm: Path, idle: int, tmp_path: Path) -> None:
    rates: dict[str, list[float]] = {}
    costs: dict[str, list[float]] = {}  # CPU us per vfork
    cpu: dict[str, list[float]] = {}
    delivered: dict[str, int] = {}
    made: dict[str, int] = {}  # the storm's vforks under each configuration

    def one_run() -> None:
        for round_ in range(ROUNDS):
            # every other round backwards: a neighbour's load that comes and goes hits each alike
            for name in CONFIGURATIONS[:: 1 if round_ % 2 == 0 else -1]:
                command = _command(name, idle)
                tracer = None if command is None else Running(*command, tmp_path)
                vforks, rate, cost = run_storm(storm)
                made[name] = made.get(name, 0) + vforks
                rates.setdefault(name, []).append(rate)
                costs.setdefault(name, []).append(cost)
                if tracer is None:
                    continue
                used, said = tracer.stop()
                cpu.setdefault(name, []).append(used)
                summary = re.search(r"rawtrace: (\d+) events, (\d+) lost", said)
                if name != "empty programs":
                    assert summary is not None, said
                    delivered[name] = delivered.get(name, 0) + int(summary[1]) + int(summary[2])

    benchmark.pedantic(one_run, rounds=1, iterations=1)
    # what each configuration claims to cost: the --pid filter let none of the storm's vforks
    # through, the unfiltered trace wrote (or counted lost) every one of them and the host's
    assert delivered["--pid of an idle process"] == 0
    assert delivered["unfiltered"] >= made["unfiltered"]

    base, floor = (statistics.median(rates[name]) for name in CONFIGURATIONS[:2])
    base_cost, floor_cost = (statistics.median(costs[name]) for name in CONFIGURATIONS[:2])
    table = Table(
        f"filter cost, vfork storm: {ROUNDS} rounds of {SECONDS:g} s, medians",
        ["configuration", "vfork/s", "slowdown", "x floor", "CPU us/vfork", "x untraced",
         "x floor", "events", "tracer CPU s"],
    )  # fmt: skip
    for name in CONFIGURATIONS:
        rate, cost = statistics.median(rates[name]), statistics.median(costs[name])
        used = statistics.median(cpu[name]) if name in cpu else ""
        events = delivered.get(name, "")
        row = [name, rate, base / rate, floor / rate, cost, cost / base_cost, cost / floor_cost]
        table.rows.append([*row, events, used])
    table.notes.append("slowdown, x floor: untraced (or the empty programs') vfork/s over this")
    table.notes.append("one's; CPU us/vfork: the storm's, with its children; events: written")
    table.notes.append("or lost by rawtrace (unfiltered: every vfork on the host), all rounds")
    publish(table, "filter_cost")
