"""A long vfork storm under `rawtrace trace`: the tracer's resident memory over time, and whether
every vfork was delivered or reported lost.

    sudo python3 benchmarks/soak.py --minutes 10 [--processes 1] [--interval 15] [--transport T]

The storm is benchmarks/storm.py's C loop (built with gcc, or $CC); the tracer filters on its
comm in the kernel and writes its events to /dev/null. One line per RSS sample, then the
summary; exits 1 when vforks went missing (neither delivered nor reported lost).
"""

from __future__ import annotations

import argparse
import datetime
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path

from storm import build_storm, start_storms, storm_counts

from kernel_compat import resident_kib

ROOT = Path(__file__).resolve().parent.parent
WARM_UP = 0.1  # of the run: allocations that happen once (imports, first batches) come first


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=10)
    parser.add_argument("--processes", type=int, default=1, help="storms side by side")
    parser.add_argument("--interval", type=float, default=15, help="seconds between samples")
    parser.add_argument("--transport", default="auto", choices=("auto", "perf", "ringbuf"))
    args = parser.parse_args()
    seconds = args.minutes * 60
    # A comm of its own: a benchmark's storm running meanwhile is not counted.
    comm = f"soak{os.getpid()}"
    with tempfile.TemporaryDirectory() as folder, ExitStack() as cleanup:
        storm = build_storm(Path(folder), os.environ.get("CC", "gcc"), comm)
        stderr_path = Path(folder) / "tracer.err"
        with open(stderr_path, "w") as stderr:
            tracer = subprocess.Popen(
                [sys.executable, "-m", "rawtrace", "trace", "vfork", f"--comm={comm}",
                 f"--transport={args.transport}", "-o", os.devnull],
                cwd=ROOT,
                stderr=stderr,
            )  # fmt: skip
        cleanup.callback(_end, tracer)
        while "rawtrace: tracing" not in stderr_path.read_text():
            if tracer.poll() is not None:
                sys.exit(f"the tracer did not start: {stderr_path.read_text()}")
            time.sleep(0.05)
        started = time.monotonic()
        storms = start_storms(storm, args.processes, seconds)
        for run in storms:
            cleanup.callback(_end, run)
        samples: list[tuple[float, int]] = []
        while True:
            if tracer.poll() is not None:
                sys.exit(f"the tracer ended early: {stderr_path.read_text()}")
            samples.append((time.monotonic() - started, resident_kib(tracer.pid)))
            print(f"{samples[-1][0]:7.1f} s  RSS {samples[-1][1] / 1024:6.2f} MiB", flush=True)
            if any(run.poll() is None for run in storms):
                time.sleep(min(args.interval, max(seconds - samples[-1][0], 0.1)))
            else:
                break
        vforks, ran = storm_counts(storms)
        tracer.send_signal(signal.SIGINT)
        tracer.wait(timeout=60)
        summary = re.search(r"rawtrace: (\d+) events, (\d+) lost", stderr_path.read_text())
        if summary is None:
            sys.exit(f"no summary from the tracer: {stderr_path.read_text()}")
    delivered, lost = int(summary[1]), int(summary[2])
    warm = next(kib for at, kib in samples if at >= seconds * WARM_UP)
    rss = [kib / 1024 for _, kib in samples]
    print(
        f"soak {datetime.date.today()}: {ran:.0f} s, {args.processes} storm(s), "
        f"transport {args.transport}: {vforks} vforks, {delivered} events, {lost} lost, "
        f"{vforks - delivered - lost} missing\n"
        f"RSS MiB first {rss[0]:.2f}, after warm-up {warm / 1024:.2f}, last {rss[-1]:.2f}, "
        f"max {max(rss):.2f}; growth after warm-up {(samples[-1][1] - warm) / 1024:+.2f} MiB"
    )
    return 0 if vforks == delivered + lost else 1


def _end(process: subprocess.Popen[str] | subprocess.Popen[bytes]) -> None:
    """Kill a process left running by an early exit, and reap it."""
    if process.poll() is None:
        process.kill()
    process.wait()


if __name__ == "__main__":
    sys.exit(main())
