"""`rawtrace features`: what this kernel offers rawtrace, in the spirit of `bpftool feature probe`.

Facts are read (release, config, PMUs, tracefs, BTF, capabilities, the settings that can refuse a
tracer), bpf() features are probed by loading tiny programs (rawtrace.kernel.feature_probes), which
say where each filter kind runs (rawtrace.filters.placing), and each attach family is tried for
real: a tracer is started with it forced and closed at once, so "available" means it attached. The
report also names rawtrace's own paths: the ring drain and the FFI backend in use."""

from __future__ import annotations

from typing import Any, Callable

from kernel_compat import (
    Capability,
    KernelFactError,
    capability_name,
    effective_capabilities,
    find_tracefs,
    kernel_config,
    kernel_release,
    list_pmus,
    lockdown,
    memlock_limit,
    perf_event_paranoid,
    unprivileged_bpf_disabled,
    vmlinux_btf_path,
)
from rawtrace.attach.ladder import LADDER, Rung
from rawtrace.errors import RawtraceError, reason
from rawtrace.filters.placing import report as filter_places
from rawtrace.kernel.feature_probes import FEATURES
from rawtrace.kernel.ffi import BACKEND
from rawtrace.tracer import Tracer
from rawtrace.transports.drain import COMPILED_MISSING, DRAINS

CONFIG_OPTIONS = ("KPROBES", "KPROBE_EVENTS", "BPF_EVENTS", "FTRACE_SYSCALLS", "DEBUG_INFO_BTF")
CAPABILITIES = (Capability.SYS_ADMIN, Capability.BPF, Capability.PERFMON)

Report = dict[str, Any]


def collect() -> Report:
    """Everything `rawtrace features --json` prints, as plain JSON values."""
    attach = [_try_family(rung) for rung in LADDER]
    return {
        **runtime(),
        "kernel": _fact(lambda: kernel_release().text),
        "config": _config(),
        "pmus": _fact(list_pmus),
        "tracefs": _fact(lambda: str(find_tracefs())),
        "btf": _fact(lambda: str(vmlinux_btf_path())),
        "capabilities": _fact(
            lambda: {capability_name(cap): cap in effective_capabilities() for cap in CAPABILITIES}
        ),
        "restrictions": {
            # without the lockdown LSM nothing is locked down
            "lockdown": _fact(lambda: lockdown() or "none"),
            "unprivileged_bpf_disabled": _fact(unprivileged_bpf_disabled),
            "perf_event_paranoid": _fact(perf_event_paranoid),
            "memlock": _fact(_memlock),
        },
        "bpf": [
            {
                "kind": f.kind,
                "name": f.name,
                "description": f.description,
                "since": None if f.since is None else "{}.{}".format(*f.since),
                **_probe(f.probe),
            }
            for f in FEATURES
        ],
        "filters": filter_places(),
        "attach": attach,
        "auto": next(
            (f["family"] for f in attach if f["available"] and not f["passed_over_in_auto"]), None
        ),
    }


def runtime() -> Report:
    """The ring drain ("compiled" or "python", and why python) and the FFI backend in use."""
    return {"drain": DRAINS.name, "drain_fallback": COMPILED_MISSING, "ffi": BACKEND}


def _fact(read: Callable[[], Any]) -> Any:
    """A fact's value, or {"error": why} when it cannot be read."""
    try:
        return read()
    except KernelFactError as exc:
        return {"error": str(exc)}


def _memlock() -> int | str:
    """RLIMIT_MEMLOCK in bytes, which BPF memory is charged to before 5.11."""
    limit = memlock_limit()
    return "unlimited" if limit is None else limit


def _config() -> Report:
    try:
        config = kernel_config()
    except KernelFactError as exc:
        return {"source": None, "error": str(exc), "options": dict.fromkeys(CONFIG_OPTIONS)}
    options = {option: config.enabled(option) for option in CONFIG_OPTIONS}
    return {"source": config.source, "options": options}


def _probe(probe: Callable[[], bool]) -> Report:
    try:
        return {"available": bool(probe())}
    except (RawtraceError, OSError) as exc:
        return {"available": None, "error": reason(exc)}


def _try_family(rung: Rung) -> Report:
    """Whether the family attaches (tried for real), and why auto mode would pass over it."""
    passed_over = rung.unsafe_in_auto()
    try:
        with Tracer("vfork", attach=rung.name, pages=1):
            pass
    except (RawtraceError, OSError) as exc:
        return {
            "family": rung.name,
            "available": False,
            "reason": reason(exc),
            "passed_over_in_auto": passed_over,
        }
    return {
        "family": rung.name,
        "available": True,
        "reason": None,
        "passed_over_in_auto": passed_over,
    }


def format_table(report: Report) -> str:
    """The report for people: one fact per line, then the probes and families."""
    config = report["config"]
    why_python = f" ({report['drain_fallback']})" if report["drain_fallback"] else ""
    lines = [
        f"drain           {report['drain']}{why_python}",
        f"ffi             {report['ffi']}",
        f"kernel          {_text(report['kernel'])}",
        f"config          {config['source'] or 'unreadable: ' + config.get('error', '')}",
        *(f"  CONFIG_{option:<15} {_flag(value)}" for option, value in config["options"].items()),
        f"PMUs            {_text(report['pmus'])}",
        f"tracefs         {_text(report['tracefs'])}",
        f"BTF             {_text(report['btf'])}",
        f"capabilities    {_text(report['capabilities'])}",
        f"restrictions    {_text(report['restrictions'])}",
        "",
        "bpf()",
        *(
            f"  {row['kind']:<13} {row['name']:<38} {_flag(row['available']):<4} "
            f"{row['description']}{' (' + row['error'] + ')' if 'error' in row else ''}"
            for row in report["bpf"]
        ),
        "",
        "filters (where each kind runs: in the kernel, or on the decoded events)",
        *(
            f"  {row['kind']:<15} {row['where']}{': ' + row['reason'] if row['reason'] else ''}"
            for row in report["filters"]
        ),
        "",
        "attach families (auto mode takes the first available it does not pass over)",
        *(
            f"  {row['family']:<15} {'yes' if row['available'] else 'no: ' + row['reason']}"
            + (
                f" (auto passes over it: {row['passed_over_in_auto']})"
                if row["passed_over_in_auto"]
                else ""
            )
            for row in report["attach"]
        ),
        "",
        f"auto mode uses  {report['auto'] or 'nothing: no family works'}",
    ]
    return "\n".join(lines) + "\n"


def _flag(value: bool | None) -> str:
    return "?" if value is None else "yes" if value else "no"


def _text(value: Any) -> str:
    if isinstance(value, dict) and set(value) == {"error"}:
        return f"unreadable: {value['error']}"
    if isinstance(value, dict):
        return ", ".join(
            f"{key}={_flag(v) if isinstance(v, bool) else v}" for key, v in value.items()
        )
    return str(value)
