"""Every value is checked where the CLI and the API share it (TracePlan.build) or in the CLI's
own types: a bad one is one line naming the option and what is accepted, exit status 2 for the
CLI and a UsageError for the API, never a traceback."""

from __future__ import annotations

import contextlib
import io
import os
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rawtrace import RawtraceError, UsageError
from rawtrace.cli.command_line import parse
from rawtrace.plan import TracePlan

PID_MAX = int(Path("/proc/sys/kernel/pid_max").read_text())


def _usage_error(argv: list[str]) -> str:
    """The one line a refused argv prints; fails unless it exits 2 with exactly one line."""
    err = io.StringIO()
    with contextlib.redirect_stderr(err), pytest.raises(SystemExit) as exited:
        parse(argv)
    assert exited.value.code == 2, err.getvalue()
    assert err.getvalue().count("\n") == 1, err.getvalue()
    return err.getvalue()


@pytest.mark.parametrize(
    ("argv", "says"),
    [
        (["--duration", "nan"], "--duration: a number above 0"),
        (["--duration", "inf"], "--duration: a number above 0"),
        (["--duration", "-1"], "--duration: a number above 0"),
        (["--stall-ms", "nan"], "--stall-ms: a number above 0"),
        (["--stall-ms", "inf"], "--stall-ms: a number above 0"),
        (["--buffer", "4G"], "--buffer: a size from 1 to 1G"),
        (["--buffer", "0"], "--buffer: a size from 1 to 1G"),
        (["--buffer=-8K"], "--buffer: a size from 1 to 1G"),
        (["--pid", str(PID_MAX)], f"--pid {PID_MAX} is out of range; give one from 1 to"),
        (["--pid", "0"], "--pid 0 is out of range"),
        (["--tid", str(1 << 64)], "--tid 18446744073709551616 is out of range"),
        (
            ["--uid", str(1 << 32)],
            "--uid 4294967296 is out of range; give one from 0 to 4294967294",
        ),
        (["--uid", "-1"], "--uid -1 is out of range"),
        (["--follow", str(2**64 + 1)], "--follow 18446744073709551617 is out of range"),
        (["--comm", "a" * 16], "--comm 'aaaaaaaaaaaaaaaa' can be no process's name"),
        (["--cgroup", "/tmp"], "--cgroup '/tmp' names no cgroup"),
        (["--cgroup", "x" * 300], "names no cgroup"),  # ENAMETOOLONG, in one line
        (["--cgroup", "/../../etc"], "names no cgroup"),
        (["--container", "xyz"], "cannot filter on container 'xyz'"),
        (["--"], "-- ends the options but no COMMAND follows it"),
        (["--follow", "1", "--", "true"], "--follow and -- COMMAND both say whom to follow"),
    ],
)
def test_a_bad_value_is_one_line_naming_the_option(argv: list[str], says: str) -> None:
    assert says in _usage_error(["trace", "vfork", *argv])


@pytest.mark.parametrize(
    ("events", "says"),
    [
        ("vfork,vfork", "events named more than once: vfork"),
        ("vfork, exit,exit", "events named more than once: exit"),
        ("nosuch", "unknown event 'nosuch'; known events:"),
        (",", "no events to trace"),
    ],
)
def test_events_are_each_named_once_and_known(events: str, says: str) -> None:
    assert says in _usage_error(["trace", events])


def test_the_root_cgroup_is_named_as_proc_pid_cgroup_names_it() -> None:
    from kernel_compat.system.cgroups import cgroup2_mountpoint

    plan = parse(["trace", "vfork", "--cgroup", "/"]).plan
    assert plan.filters.cgroups == (os.stat(cgroup2_mountpoint()).st_ino,)


@pytest.mark.parametrize(
    ("options", "says"),
    [
        ({"events": []}, "no events to trace"),
        (
            {"events": 5},
            "events: event names or declarations, as a list or one comma-separated string, not 5",
        ),
        ({"events": ["vfork", None]}, "events: event names"),
        ({"follow": "12"}, "--follow takes a whole number, not str '12'"),
        ({"follow": True}, "--follow takes a whole number, not bool True"),
        ({"pid": 1.5}, "pid= takes a value or a list of them, not float 1.5"),
        ({"pid": [1.5]}, "--pid takes a whole number, not float 1.5"),
        ({"pid": b"12"}, "pid= takes a value or a list of them, not bytes"),
        ({"uid": [0, "root"]}, "--uid takes a whole number, not str 'root'"),
        ({"comm": 7}, "--comm takes a name, not int 7"),
        ({"cgroup": 0}, "--cgroup 0 is out of range"),
        ({"cgroup": [2.0]}, "--cgroup takes a whole number, not float"),
        ({"stall_ms": "5"}, "stall_ms (--stall-ms) '5' is no threshold"),
        ({"stall_ms": float("nan")}, "is no threshold"),
        ({"pages": 3}, "pages 3 is no ring size; give a power of two from 1 to"),
        ({"pages": 1 << 30}, "is no ring size"),
        ({"attach": None}, "unknown attach mode None; choose one of auto"),
        ({"transport": ["perf"]}, "unknown transport ['perf']"),
        ({"filters_in": 1}, "unknown filters_in 1"),
        ({"gpu": 1}, "unknown filter 'gpu'"),
    ],
)
def test_the_api_names_a_badly_typed_argument(options: dict[str, object], says: str) -> None:
    events = options.pop("events", "vfork")
    with pytest.raises(UsageError) as refused:
        TracePlan.build(events, **options)  # type: ignore[arg-type]
    assert says in str(refused.value)
    assert isinstance(refused.value, RawtraceError)


def test_trace_of_no_events_is_refused_before_anything_is_made() -> None:
    from rawtrace import trace

    with pytest.raises(UsageError, match="no events to trace"):
        trace([])


_TOKENS = st.sampled_from(
    [
        "trace", "features", "vfork", "exit,vfork", "vfork,vfork", "nosuch", "--", "-o",
        "--json", "--list", "--quiet", "--summary", "--events", "--duration", "--stall-ms",
        "--buffer", "--pid", "--tid", "--uid", "--comm", "--cgroup", "--container",
        "--follow", "--transport", "--attach", "perf", "auto", "0", "1", "-1", "nan", "4G",
        "1e400", "/", "x" * 300, "true",
    ]
)  # fmt: skip
# argv as the kernel hands it over: any bytes but NUL, undecodable ones as surrogates
_WORDS = st.one_of(
    _TOKENS,
    st.text(max_size=20).filter(lambda w: "\0" not in w),
    st.binary(max_size=20).filter(lambda b: b"\0" not in b).map(os.fsdecode),
)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(_WORDS, max_size=8))
def test_any_argv_is_a_plan_or_one_line_and_exit_2(argv: list[str]) -> None:
    err, out = io.StringIO(), io.StringIO()
    try:
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(out):
            args = parse(argv)
    except SystemExit as exited:
        if exited.code == 0:  # --help or --version
            assert out.getvalue() and not err.getvalue()
            return
        assert exited.code == 2
        assert err.getvalue().count("\n") == 1, err.getvalue()
        return
    assert err.getvalue() == ""
    if args.subcommand == "trace" and not args.list:
        assert isinstance(args.plan, TracePlan)


@pytest.mark.parametrize("value", [float("nan"), -1, "1", True])
def test_read_and_run_take_a_number_of_seconds(value: object) -> None:
    from rawtrace import Tracer

    tracer = Tracer("vfork", on_event=print)  # never started: the check comes first
    with pytest.raises(UsageError, match=r"timeout .* is no number of seconds; give 0 or more"):
        tracer.read(value)  # type: ignore[arg-type]
    with pytest.raises(UsageError, match=r"duration .* is no number of seconds"):
        tracer.run(value)  # type: ignore[arg-type]
