"""The vfork storm of the benchmarks and the soak: a C loop (vfork, the child `_exit`s, the
parent `waitpid`s) that runs for a given time and prints how many vforks it made."""

from __future__ import annotations

import subprocess
from pathlib import Path

COMM = "vstorm"  # both tracers filter on it in the kernel: other work on the host stays out

STORM_C = r"""
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* vfork, the child exits at once, the parent reaps it; for argv[1] seconds */
int main(int argc, char **argv)
{
    double seconds = atof(argv[1]), elapsed = 0;
    struct timespec start, now;
    long count = 0;
    clock_gettime(CLOCK_MONOTONIC, &start);
    while (elapsed < seconds) {
        for (int i = 0; i < 64; i++) {
            pid_t pid = vfork();
            if (pid == 0)
                _exit(0);
            if (pid < 0)
                return 1;
            waitpid(pid, NULL, 0);
            count++;
        }
        clock_gettime(CLOCK_MONOTONIC, &now);
        elapsed = (now.tv_sec - start.tv_sec) + (now.tv_nsec - start.tv_nsec) / 1e9;
    }
    printf("%ld %.6f\n", count, elapsed);
    return 0;
}
"""


def build_storm(folder: Path, cc: str = "gcc", name: str = COMM) -> Path:
    """Compile the storm into folder as `name` (its comm); its path. Raises OSError or
    CalledProcessError."""
    (folder / "storm.c").write_text(STORM_C)
    subprocess.run([cc, "-O2", "-o", str(folder / name), str(folder / "storm.c")], check=True)
    return folder / name


def start_storms(storm: Path, processes: int, seconds: float) -> list[subprocess.Popen[str]]:
    """`processes` storms side by side, each running for `seconds`."""
    return [subprocess.Popen([str(storm), str(seconds)], stdout=subprocess.PIPE, text=True)
            for _ in range(processes)]  # fmt: skip


def storm_counts(runs: list[subprocess.Popen[str]]) -> tuple[int, float]:
    """Wait for the storms; the vforks they made together, and the longest time one ran."""
    counts, elapsed = [], []
    for run in runs:
        out, _ = run.communicate()
        count, ran = out.split()
        counts.append(int(count))
        elapsed.append(float(ran))
    return sum(counts), max(elapsed)


def run_storm(storm: Path, processes: int, seconds: float) -> tuple[int, float]:
    """vforks done by `processes` storms side by side for `seconds`, and the seconds they ran."""
    return storm_counts(start_storms(storm, processes, seconds))
