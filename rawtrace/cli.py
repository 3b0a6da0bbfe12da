"""The command line: `rawtrace trace EVENTS [options]`, built on the public API alone.

Exit status: 0 on success (Ctrl-C and SIGTERM included), 1 when tracing fails (the cause and fix
on one line of stderr), 2 for bad usage.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import time
from collections.abc import Sequence
from types import FrameType
from typing import TextIO

import rawtrace
from rawtrace import plan
from rawtrace.errors import RawtraceError, VerifierError
from rawtrace.events import CATALOGUE
from rawtrace.features import collect, format_table, runtime
from rawtrace.output import JsonWriter, TableWriter
from rawtrace.tracer import Tracer
from rawtrace.transport import AUTO, TRANSPORTS


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="rawtrace",
        description="eBPF tracing in pure Python: no compiler, BCC or kernel headers needed.",
    )
    paths = runtime()
    version = f"rawtrace {rawtrace.__version__} (drain: {paths['drain']}, ffi: {paths['ffi']})"
    parser.add_argument("--version", action="version", version=version)
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    trace = commands.add_parser(
        "trace",
        help="trace events and print them",
        description="Trace events until Ctrl-C, SIGTERM or --duration, then print a summary "
        "(events, lost per CPU) to stderr.",
        epilog="events: " + "; ".join(f"{s.name}: {s.description}" for s in CATALOGUE.values()),
    )
    trace.add_argument("events", help="comma-separated event names, e.g. vfork")
    trace.add_argument("--json", action="store_true", help="NDJSON in Tracee's event shape")
    trace.add_argument("--duration", type=_positive_float, metavar="S", help="stop after S s")
    trace.add_argument("--pid", type=int, help="only events of this process (tgid)")
    trace.add_argument("--comm", help="only events of processes with this name (comm)")
    trace.add_argument(
        "--transport",
        choices=TRANSPORTS,
        default=AUTO,
        help="how records reach rawtrace: perf rings, or the BPF ring buffer (5.8+); "
        "auto takes the ring buffer where the kernel has it",
    )
    trace.add_argument(
        "--attach",
        choices=plan.ATTACH_MODES,
        default=plan.AUTO,
        help="how to hook the kernel; auto takes the first family that works, in this order",
    )

    features = commands.add_parser(
        "features",
        help="report what the kernel offers rawtrace",
        description="Kernel release, config, PMUs, tracefs, BTF, capabilities, the bpf() "
        "features that load, and each attach family: available, or why not.",
    )
    features.add_argument("--json", action="store_true", help="one JSON object")
    return parser


def _positive_float(text: str) -> float:
    value = float(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be positive, not {text}")
    return value


class _StopSignal:
    """Turns SIGINT and SIGTERM into a flag that the read loop checks."""

    def __init__(self) -> None:
        self.received = False
        for signum in (signal.SIGINT, signal.SIGTERM):
            signal.signal(signum, self._handle)

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        self.received = True


def _slow_path_warning() -> str | None:
    """One line when rawtrace runs without its compiled drain: which paths run instead, and why.

    Where cffi is missing, the compiled drain cannot load either (it needs cffi's backend).
    """
    paths = runtime()
    if paths["drain_fallback"] is None:
        return None
    slow, why = "the Python ring drain", [paths["drain_fallback"]]
    if paths["ffi"] == "ctypes":
        slow += " and ctypes syscalls"
        why.append("cffi is not installed")
    return f"rawtrace: warning: {slow} (slower): {'; '.join(dict.fromkeys(why))}"


def _run_trace(args: argparse.Namespace, out: TextIO) -> None:
    warning = _slow_path_warning()
    if warning:
        print(warning, file=sys.stderr)
    stop = _StopSignal()
    deadline = None if args.duration is None else time.monotonic() + args.duration
    with Tracer(
        args.events, pid=args.pid, comm=args.comm, transport=args.transport, attach=args.attach
    ) as tracer:
        writer = JsonWriter(out) if args.json else TableWriter(out)
        names = ",".join(spec.name for spec in tracer.specs)
        via = tracer.attach_choice.family if tracer.attach_choice else args.attach
        print(f"rawtrace: tracing {names} via {via}; Ctrl-C to stop", file=sys.stderr, flush=True)
        while not stop.received and (deadline is None or time.monotonic() < deadline):
            for event in tracer.read(timeout=0.1):
                writer.write(event)
            out.flush()
        tracer.stop()
        for event in tracer:  # what the rings still hold after detaching
            writer.write(event)
        out.flush()
        stats = tracer.stats()
    per_cpu = ", ".join(f"cpu{cpu}: {lost}" for cpu, lost in sorted(stats.lost_per_cpu.items()))
    # Probe misses are unknown where the kernel keeps them to itself (kprobe PMU before 6.7).
    missed = "unknown" if stats.missed is None else stats.missed
    lost = f"{stats.lost} lost ({per_cpu}; probe misses: {missed})"
    print(f"rawtrace: {stats.delivered} events, {lost}", file=sys.stderr)


def _run_features(args: argparse.Namespace, out: TextIO) -> None:
    report = collect()
    out.write(json.dumps(report) + "\n" if args.json else format_table(report))


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        if args.command == "trace":
            _run_trace(args, sys.stdout)
        elif args.command == "features":
            _run_features(args, sys.stdout)
    except VerifierError as exc:
        print(f"rawtrace: {exc}\n{exc.log}", file=sys.stderr)
        return 1
    except RawtraceError as exc:
        print(f"rawtrace: {exc}", file=sys.stderr)
        return 1
    except BrokenPipeError:
        sys.stderr.close()  # the reader went away (| head): nothing left to say
        return 0
    return 0
