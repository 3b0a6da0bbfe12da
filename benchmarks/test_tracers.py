"""(2) The vfork storm untraced, under rawtrace with each transport and under bpftrace, with 1 and
2 processes; (3) start-up, from process start to attached; (4) each tracer's peak RSS.

Timings on a small shared machine are noisy: every configuration runs in each round, the
rounds interleave, and the tables give medians and ratios from this one run.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from bench_report import Table, publish
from storm import COMM, build_storm, run_storm

ROOT = Path(__file__).resolve().parent.parent
SECONDS = float(os.environ.get("RAWTRACE_STORM_SECONDS", "3"))
ROUNDS = int(os.environ.get("RAWTRACE_STORM_ROUNDS", "3"))
BPFTRACE_PROGRAM = (
    f'tracepoint:syscalls:sys_exit_vfork /comm == "{COMM}" && args->ret > 0/ '
    '{ printf("%d %s %d\\n", pid, comm, args->ret); }'
)


@pytest.fixture(scope="module")
def storm(tmp_path_factory: pytest.TempPathFactory) -> Path:
    try:
        return build_storm(tmp_path_factory.mktemp("storm"), os.environ.get("CC", "gcc"))
    except (OSError, subprocess.CalledProcessError) as exc:
        pytest.skip(f"cannot build the vfork storm: {exc}")


@pytest.fixture(scope="module", autouse=True)
def bytecode() -> None:
    # an installed rawtrace has its .pyc files; this checkout may not (PYTHONDONTWRITEBYTECODE)
    subprocess.run(
        [sys.executable, "-m", "compileall", "-q", "rawtrace", "bpf_bytecode", "kernel_compat"],
        cwd=ROOT,
        check=True,
        env={k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"},
    )


def rawtrace_command(transport: str) -> list[str]:
    return [sys.executable, "-m", "rawtrace", "trace", "vfork", f"--comm={COMM}",
            f"--transport={transport}"]  # fmt: skip


TRACERS: dict[str, tuple[list[str], str, str]] = {
    # name: command, the line that says it is attached, and which stream it comes on
    "rawtrace perf": (rawtrace_command("perf"), "rawtrace: tracing", "stderr"),
    "rawtrace ringbuf": (rawtrace_command("ringbuf"), "rawtrace: tracing", "stderr"),
    "bpftrace": (["bpftrace", "-e", BPFTRACE_PROGRAM], "Attaching", "stdout"),
}


def tracers_here() -> list[str]:
    """The tracers to compare: rawtrace's always, bpftrace where it is installed (CI's smoke run
    has none; the README's figures come from a machine that has it)."""
    return [name for name in TRACERS if name != "bpftrace" or shutil.which("bpftrace")]


@dataclass
class Traced:
    """One tracer's run: how long it took to attach, what it delivered and lost, what it cost."""

    attach_s: float
    delivered: int
    lost: int
    max_rss_kib: int
    cpu_s: float


class Tracer:
    """A tracer process, started and awaited until attached; stop() ends it and collects the
    counts. Its output goes to files (in memory, see workdir), never to a pipe that could fill
    up, and the benchmark polls them for the attached line."""

    def __init__(self, name: str, workdir: Path) -> None:
        command, self.marker, stream = TRACERS[name]
        self.name = name
        self.outputs = {
            "stdout": workdir / f"{name.replace(' ', '_')}.out",
            "stderr": workdir / f"{name.replace(' ', '_')}.err",
        }
        self.said = self.outputs[stream]
        started = time.monotonic()
        with open(self.outputs["stdout"], "w") as out, open(self.outputs["stderr"], "w") as err:
            self.process = subprocess.Popen(
                command,
                cwd=ROOT,
                stdout=out,
                stderr=err,
                # a benchmark run from a background job inherits SIGINT ignored
                preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
            )
        while self.marker not in self.said.read_text():
            if self.process.poll() is not None or time.monotonic() - started > 30:
                raise RuntimeError(f"{name} did not attach: {self.said.read_text()}")
            time.sleep(0.002)
        self.attach_s = time.monotonic() - started
        self.stream = stream

    def peak_rss_kib(self) -> int:
        # VmHWM, not the ru_maxrss of wait4: that one keeps the high-water mark of the
        # benchmark process itself, whose memory the child had until it called exec
        with open(f"/proc/{self.process.pid}/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
        raise RuntimeError(f"{self.name} has no VmHWM")

    def stop(self) -> Traced:
        peak_rss = self.peak_rss_kib()  # just before the flush: the peak of the run
        usage = None
        for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGKILL):
            self.process.send_signal(signum)
            deadline = time.monotonic() + 10
            while usage is None and time.monotonic() < deadline:
                pid, _, usage = os.wait4(self.process.pid, os.WNOHANG)
                if pid == 0:
                    usage = None
                    time.sleep(0.01)
            if usage is not None:
                break
        assert usage is not None
        self.process.returncode = 0  # reaped above; keep Popen from waiting again
        out, err = (self.outputs[k].read_text() for k in ("stdout", "stderr"))
        if self.name == "bpftrace":
            events = out.split(self.marker, 1)[1].splitlines()
            delivered = sum(1 for line in events if line.endswith(tuple("0123456789")))
            lost = sum(int(n) for n in re.findall(r"Lost (\d+) events", out + err))
        else:
            summary = re.search(r"rawtrace: (\d+) events, (\d+) lost", err)
            assert summary is not None, err
            delivered, lost = int(summary[1]), int(summary[2])
            assert delivered == len(out.splitlines()) - 1  # the header
        return Traced(self.attach_s, delivered, lost, peak_rss, usage.ru_utime + usage.ru_stime)


@pytest.fixture
def workdir() -> Iterator[Path]:
    with tempfile.TemporaryDirectory(dir="/dev/shm" if os.path.isdir("/dev/shm") else None) as d:
        yield Path(d)  # the tracers' output goes to memory, as cheap as /dev/null


def test_vfork_storm(benchmark: Any, root: None, storm: Path, workdir: Path) -> None:
    configurations = ["untraced", *tracers_here()]
    rates: dict[tuple[str, int], list[float]] = {}
    runs: dict[tuple[str, int], list[tuple[int, Traced | None]]] = {}

    def one_run() -> None:
        for _ in range(ROUNDS):
            for processes in (1, 2):
                for name in configurations:
                    tracer = None if name == "untraced" else Tracer(name, workdir)
                    vforks, seconds = run_storm(storm, processes, SECONDS)
                    traced = tracer.stop() if tracer else None
                    rates.setdefault((name, processes), []).append(vforks / seconds)
                    runs.setdefault((name, processes), []).append((vforks, traced))

    benchmark.pedantic(one_run, rounds=1, iterations=1)

    table = Table(
        f"vfork storm: {ROUNDS} rounds of {SECONDS:g} s, medians",
        ["configuration", "processes", "vfork/s", "slowdown", "delivered", "lost",
         "missing", "tracer CPU s", "peak RSS MiB"],
    )  # fmt: skip
    for processes in (1, 2):
        base = statistics.median(rates[("untraced", processes)])
        for name in configurations:
            rate = statistics.median(rates[(name, processes)])
            traced_runs = [(v, t) for v, t in runs[(name, processes)] if t is not None]
            row: list[Any] = [name, processes, rate, base / rate]
            if traced_runs:
                # events for the storm's own vforks: what arrived, what was reported lost, and
                # what vanished without a word (should be 0)
                delivered = sum(t.delivered for _, t in traced_runs)
                lost = sum(t.lost for _, t in traced_runs)
                missing = sum(v for v, _ in traced_runs) - delivered - lost
                # a tracer that drops events without counting them measured nothing
                assert missing == 0, f"{name}, {processes} processes: {missing} vforks missing"
                cpu = statistics.median(t.cpu_s for _, t in traced_runs)
                rss = max(t.max_rss_kib for _, t in traced_runs) / 1024
                row += [delivered, lost, missing, cpu, rss]
            else:
                row += ["", "", "", "", ""]
            table.rows.append(row)
    table.notes.append("slowdown: untraced vfork/s over traced; delivered/lost/missing: all rounds")
    publish(table, "vfork_storm")


def test_start_up_and_idle_rss(benchmark: Any, root: None, workdir: Path) -> None:
    results: dict[str, list[Traced]] = {}
    tracers = tracers_here()

    def one_run() -> None:
        for _ in range(5):
            for name in tracers:
                results.setdefault(name, []).append(Tracer(name, workdir).stop())

    benchmark.pedantic(one_run, rounds=1, iterations=1)
    floor = []
    for _ in range(5):
        started = time.monotonic()
        subprocess.run([sys.executable, "-c", "pass"], check=True)
        floor.append(time.monotonic() - started)

    table = Table(
        "Start-up (process start to attached) and peak RSS, medians of 5",
        ["tracer", "attached after s", "x bpftrace", "peak RSS MiB", "x bpftrace"],
    )
    for name, traced in results.items():
        attach = statistics.median(t.attach_s for t in traced)
        rss = statistics.median(t.max_rss_kib for t in traced)
        table.rows.append([name, attach, _ratio(attach, results, "attach_s"), rss / 1024,
                           _ratio(rss, results, "max_rss_kib")])  # fmt: skip
    table.notes.append(f"`python3 -c pass` alone takes {statistics.median(floor):.3f} s here")
    publish(table, "start_up")


def _ratio(value: float, results: dict[str, list[Traced]], measure: str) -> float | str:
    """value over bpftrace's median of the same measure; "" where bpftrace did not run."""
    if "bpftrace" not in results:
        return ""
    return value / statistics.median(getattr(t, measure) for t in results["bpftrace"])
