"""The command line: `rawtrace trace EVENTS [options]`, built on the public API alone.

Exit status: 0 on success (Ctrl-C and SIGTERM included), 1 when tracing fails (the cause and fix
on one line of stderr), 2 for bad usage.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import signal
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import replace
from typing import NoReturn, TextIO

import rawtrace
from kernel_compat import KernelFactError, online_cpus
from rawtrace.attach import ladder as plan
from rawtrace.cli.features_report import collect, format_table, runtime
from rawtrace.cli.held_command import HeldCommand
from rawtrace.cli.stop_signals import StopSignals
from rawtrace.cli.streams import keep_standard_fds, log_to_stderr, open_event_sink
from rawtrace.errors import RawtraceError, UsageError, VerifierError, reason
from rawtrace.events.catalogue import CATALOGUE
from rawtrace.events.event import Event
from rawtrace.filters.kinds import KINDS
from rawtrace.outputs.destinations import Destination, parse_output
from rawtrace.outputs.file_sink import EventSink
from rawtrace.outputs.formats import JsonWriter, TableWriter
from rawtrace.outputs.process_tree import ProcessTree, with_summary_events
from rawtrace.outputs.sinks import ExportStats, sink
from rawtrace.plan import RING_BYTES_MAX, TracePlan, event_specs
from rawtrace.tracer import Tracer, TraceStats
from rawtrace.transports.opening import AUTO, TRANSPORTS, pages_within
from rawtrace.transports.perf_reader import DEFAULT_PAGES


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="rawtrace",
        description="eBPF tracing in pure Python: no compiler, BCC or kernel headers needed.",
    )
    paths = runtime()
    version = f"rawtrace {rawtrace.__version__} (drain: {paths['drain']}, ffi: {paths['ffi']})"
    parser.add_argument("--version", action="version", version=version)
    commands = parser.add_subparsers(dest="subcommand", required=True, metavar="COMMAND")

    trace = commands.add_parser(
        "trace",
        help="trace events and print them",
        usage="rawtrace trace EVENTS [options] [-- COMMAND [ARGS...]]",
        description="Trace events until Ctrl-C, SIGTERM or --duration, then print a summary "
        "(events, lost per CPU) to stderr. With -- COMMAND, run COMMAND, trace it and its "
        "descendants from its first instruction, stop when it ends and exit with its status; "
        "its standard output goes to standard error, unless events go to a file (-o).",
        epilog="events: " + "; ".join(f"{s.name}: {s.description}" for s in CATALOGUE.values()),
    )
    trace.add_argument(
        "events", nargs="?", help="comma-separated event names, e.g. vfork,execve,exit"
    )
    trace.add_argument(
        "--events", dest="events_option", metavar="EVENTS", help="the same, as an option"
    )
    trace.add_argument("--list", action="store_true", help="list the events and their args")
    trace.add_argument("--json", action="store_true", help="NDJSON in Tracee's event shape")
    trace.add_argument(
        "-o",
        "--output",
        type=_output,
        action="append",
        default=[],
        metavar="FILE|DEST",
        help="write events to FILE (in --json's format), or send them to a collector: "
        "forward:tcp://HOST:PORT[?tag=T&requireAck=true], forward:unix:///PATH, "
        "otlp:http://HOST:4318/v1/logs, syslog:tcp://HOST:PORT; repeat for several "
        "(each gets every event; ./forward:x is a file)",
    )
    trace.add_argument("--quiet", action="store_true", help="no summary on stderr at the end")
    trace.add_argument(
        "--summary",
        action="store_true",
        help="at the end, print the tree of the processes seen to stderr (how each began, what "
        "it exec'd, its exit, its lifetime), even with --quiet; traces the lifecycle events it "
        "needs besides EVENTS, and prints only EVENTS",
    )
    trace.add_argument("--duration", type=_positive_float, metavar="S", help="stop after S s")
    trace.add_argument(
        "--stall-ms",
        type=_positive_float,
        metavar="N",
        help="report a vfork_stall event when a vfork (or a clone with CLONE_VFORK) child has "
        "held its parent for N ms without exec or exit, while it still holds it",
    )
    trace.add_argument(
        "--buffer",
        type=_size,
        metavar="SIZE",
        help="ring memory for all CPUs together, e.g. 512K or 8M (default: 256K per CPU)",
    )
    filters = trace.add_argument_group(
        "filters",
        "applied in the kernel; repeat one to accept any of its values, combine kinds to "
        "require all of them",
    )
    for kind in KINDS:
        filters.add_argument(
            f"--{kind.name}", type=kind.value_type, action="append", help=kind.help
        )
    filters.add_argument(
        "--follow", type=int, metavar="PID", help="PID and every descendant it creates"
    )
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


def _chosen_events(args: argparse.Namespace, parser: argparse.ArgumentParser) -> str:
    """EVENTS or --events: one of them (exits 2 otherwise)."""
    given: list[str] = [e for e in (args.events, args.events_option) if e is not None]
    if len(given) != 1:
        parser.error("trace: give the events once: EVENTS or --events EVENTS (--list shows them)")
    return given[0]


def _event_list() -> str:
    """Each event: name, Tracee id, args (type name), and what it reports."""
    lines = []
    for spec in CATALOGUE.values():
        args = ", ".join(f"{arg.type} {arg.name}" for arg in spec.args)
        lines += [f"{spec.name} ({spec.event_id}): {args or 'no args'}", f"    {spec.description}"]
    return "\n".join(lines) + "\n"


def _size(text: str) -> int:
    units = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}
    number, unit = (text[:-1], units[text[-1].upper()]) if text[-1:].upper() in units else (text, 1)
    accepted = f"a size from 1 to {RING_BYTES_MAX >> 30}G, like 512K or 8M, not {text!r}"
    try:
        size = int(number) * unit
    except ValueError:
        raise argparse.ArgumentTypeError(accepted) from None
    if not 0 < size <= RING_BYTES_MAX:
        raise argparse.ArgumentTypeError(accepted)
    return size


def _output(text: str) -> str | Destination:
    try:
        return parse_output(text)
    except RawtraceError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not (value > 0 and math.isfinite(value)):
        raise argparse.ArgumentTypeError(f"a number above 0 (and not inf), not {text!r}")
    return value


class _Parser(argparse.ArgumentParser):
    """Usage errors in one line (argparse prints the usage first), exit status 2."""

    def error(self, message: str) -> NoReturn:
        # an argument may hold a newline or escape sequence: shown escaped, on one line
        shown = "".join(c if c.isprintable() else repr(c)[1:-1] for c in message)
        self.exit(2, f"{self.prog}: error: {shown} (--help shows the options)\n")


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


def _run_trace(args: argparse.Namespace) -> int:
    """Trace until a signal, --duration or COMMAND's end. The exit status: COMMAND's, else 0;
    1 (or COMMAND's status if not 0) when the trace failed or events were not written."""
    warning = _slow_path_warning()
    if warning:
        print(warning, file=sys.stderr)
    stop = StopSignals()
    files = [output for output in args.output if isinstance(output, str)]
    destinations = [output for output in args.output if isinstance(output, Destination)]
    # Events go to standard output only where no -o sends them elsewhere; files are checked
    # now, before anything is loaded.
    if args.output:
        event_sinks = [open_event_sink(path, stop.asked) for path in files]
    else:
        event_sinks = [open_event_sink(None, stop.asked)]
    tree = ProcessTree() if args.summary else None
    # --summary's own events are not printed; the plan's user-space ones (the stall alarm's) are
    printed = [*args.shown, *(spec.name for spec in args.plan.events if not spec.in_kernel)]
    writers = [JsonWriter(s) if args.json else TableWriter(s) for s in event_sinks]
    sinks = [sink(d, only=printed if tree else None) for d in destinations]
    log_to_stderr()
    handed = 0  # events handed to the outputs
    failure: str | None = None
    with contextlib.ExitStack() as stack:
        for event_sink in event_sinks:
            stack.callback(event_sink.close)
        # Events own standard output unless they go to a file: COMMAND writes to stderr then.
        command = None
        plan = args.plan
        if args.command:
            command_out = None if args.output else sys.stderr.fileno()
            command = stack.enter_context(HeldCommand(args.command, command_out))
            stop.forward_to = command.pid
            plan = replace(plan, follow=command.pid)

        def write(events: list[Event]) -> None:
            nonlocal handed
            handed += _write(events, writers, tree, printed)
            for event_sink in event_sinks:
                event_sink.flush()
                if event_sink.failure or event_sink.reader_gone:
                    tracer.stop()  # nowhere to write: the trace ends (what is left is counted)

        tracer = stack.enter_context(Tracer(plan, on_batch=write, sinks=sinks))
        for event_sink in event_sinks:
            event_sink.flush(counted=False)  # the table's header, once tracing works
            if event_sink.failure:  # before COMMAND runs
                raise RawtraceError(
                    f"cannot write events to {event_sink.name}: {event_sink.failure}"
                )
        names = ",".join(spec.name for spec in tracer.specs)
        via = tracer.attach_choice.family if tracer.attach_choice else args.attach
        if not args.quiet:
            print(f"rawtrace: tracing {names} via {via}; Ctrl-C to stop", file=sys.stderr)
        sys.stderr.flush()
        if command:
            command.release()
        finished = command.finished if command else lambda: False
        try:
            tracer.run(args.duration, until=lambda: stop.received() or finished())
        except (RawtraceError, OSError) as exc:
            if command is None:
                raise
            failure = reason(exc)  # COMMAND runs on to its end, untouched
        stats = tracer.stats()
        tracer.close()
        status = _command_status(command, stop, failure)
    if tree is not None:
        print("rawtrace: process tree", file=sys.stderr)
        sys.stderr.write(tree.render())
    if not args.quiet:
        print(_summary(stats, handed, event_sinks), file=sys.stderr)
        for export in stats.exports:
            print(_export_line(export), file=sys.stderr)
    failure = failure or next((s.failure for s in event_sinks if s.failure), None)
    if failure:
        print(f"rawtrace: the trace is incomplete: {failure}", file=sys.stderr)
        return status or 1
    return status


def _command_status(command: HeldCommand | None, stop: StopSignals, failure: str | None) -> int:
    """COMMAND's exit status once it ends, else 0. A second stop signal leaves it running."""
    if command is None:
        return 0
    if failure:
        print(f"rawtrace: {failure}; {command.argv[0]} runs on to its end", file=sys.stderr)
    while not command.finished():
        if stop.received():
            print(f"rawtrace: {command.argv[0]} (pid {command.pid}) runs on", file=sys.stderr)
            return 128 + signal.SIGTERM
        time.sleep(0.05)
    return command.wait()


def _summary(stats: TraceStats, handed: int, event_sinks: Sequence[EventSink]) -> str:
    """The last line: events handed to the outputs, lost (per CPU, in probes), and those each
    file or stream did not take."""
    per_cpu = ", ".join(f"cpu{c}: {n}" for c, n in sorted(stats.lost_per_cpu.items()))
    # Probe misses are unknown where the kernel keeps them to itself (kprobe PMU before 6.7).
    missed = "unknown" if stats.missed is None else stats.missed
    # events written: to the first file (or stdout), whose shortfall the next words count
    written = event_sinks[0].written if event_sinks else handed
    line = f"rawtrace: {written} events, {stats.lost} lost ({per_cpu}; probe misses: {missed})"
    for event_sink in event_sinks:
        if event_sink.unwritten:
            cause = event_sink.failure or "the reader closed the pipe"
            line += f", {event_sink.unwritten} not written to {event_sink.name} ({cause})"
    # The summary's events and filters applied in user space leave the rings unprinted.
    if stats.delivered != handed:
        line += f"; {stats.delivered} read from the rings"
    return line


def _export_line(export: ExportStats) -> str:
    """A destination's accounting: offered = sent + dropped + unsent."""
    return (
        f"rawtrace: {export.destination}: {export.offered} events: {export.sent} sent "
        f"({export.acknowledged} acknowledged), {export.dropped} dropped, "
        f"{export.unsent} unsent; {export.retried} retried (possible duplicates)"
    )


def _write(
    events: list[Event],
    writers: Sequence[JsonWriter | TableWriter],
    tree: ProcessTree | None,
    printed: Sequence[str],
) -> int:
    """Write the events the user asked for, once the tree (with --summary) has seen them all;
    how many were written."""
    if tree is not None:
        tree.add_all(events)
        events = [event for event in events if event.event_name in printed]
    for writer in writers:
        for event in events:
            writer.write(event)
    return len(events)


def _run_features(args: argparse.Namespace, out: TextIO) -> None:
    report = collect()
    out.write(json.dumps(report) + "\n" if args.json else format_table(report))


def keep_log(error: VerifierError) -> str:
    """Write a rejected program's verifier log to a file of its own; its path."""
    fd, path = tempfile.mkstemp(prefix=f"rawtrace-verifier-{error.program}-", suffix=".log")
    with os.fdopen(fd, "w") as log:
        log.write(error.log)
    return path


def parse(argv: Sequence[str]) -> argparse.Namespace:
    """The arguments, checked: for `trace`, `plan` holds the TracePlan (no root needed). A
    usage error exits 2 with one line on stderr; --help and --version exit 0."""
    words = list(argv)
    # `-- COMMAND ARGS` is split off by hand: argparse's subparsers do not pass `--` through.
    split = words.index("--") if "--" in words else len(words)
    parser = _parser()
    args = parser.parse_args(words[:split])
    args.command = words[split + 1 :]
    if args.subcommand != "trace" or args.list:
        return args
    if split < len(words) and not args.command:
        parser.error("-- ends the options but no COMMAND follows it")
    if args.command and args.follow is not None:
        parser.error("--follow and -- COMMAND both say whom to follow: give one of them")
    args.events = _chosen_events(args, parser)
    try:
        args.shown = [spec.name for spec in event_specs(args.events)]
        args.plan = TracePlan.build(
            with_summary_events(args.shown) if args.summary else args.shown,
            follow=args.follow,
            stall_ms=args.stall_ms,
            pages=DEFAULT_PAGES
            if args.buffer is None
            else pages_within(args.buffer, len(online_cpus())),
            transport=args.transport,
            attach=args.attach,
            **{kind.name: getattr(args, kind.name) for kind in KINDS},
        )
    except UsageError as exc:
        parser.error(str(exc))
    return args


def main(argv: Sequence[str] | None = None) -> int:
    keep_standard_fds()
    try:
        args = parse(sys.argv[1:] if argv is None else argv)
    except KeyboardInterrupt:  # Ctrl-C before the trace's own handlers are in place
        return 128 + signal.SIGINT
    try:
        if args.subcommand == "trace" and args.list:
            sys.stdout.write(_event_list())
        elif args.subcommand == "trace":
            return _run_trace(args)
        elif args.subcommand == "features":
            _run_features(args, sys.stdout)
    except VerifierError as exc:
        print(f"rawtrace: {exc}; the verifier's log is in {keep_log(exc)}", file=sys.stderr)
        return 1
    except UsageError as exc:
        print(f"rawtrace: error: {exc}", file=sys.stderr)
        return 2
    except (RawtraceError, KernelFactError) as exc:  # a kernel fact unreadable: one line too
        print(f"rawtrace: {exc}", file=sys.stderr)
        return 1
    except BrokenPipeError:
        sys.stderr.close()  # the reader went away (| head): nothing left to say
        return 0
    except OSError as exc:  # none is expected here: still one line, never a traceback
        print(f"rawtrace: {reason(exc)}", file=sys.stderr)
        return 1
    return 0
