"""The kprobes that tracefs lists (kprobe_events) and their hit and miss counts (kprobe_profile).

Perf-PMU kprobes (perf_event_open on the "kprobe" PMU) are private to their event and appear in
neither file.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from ._files import read_text
from .fact_errors import KernelFactError

__all__ = ["KprobeDefinition", "ProbeCounts", "read_kprobe_events", "read_kprobe_profile"]

# "r4096:kprobes/name __x64_sys_vfork": the maxactive digits appear only when it was set.
_DEFINITION = re.compile(r"([pr])[0-9]*:([^/\s]+)/(\S+)\s+(\S+)")


@dataclass(frozen=True)
class KprobeDefinition:
    """One line of kprobe_events: "p:GROUP/NAME TARGET ..." or "r[MAXACTIVE]:GROUP/NAME ..."."""

    group: str
    name: str
    is_return: bool
    target: str


@dataclass(frozen=True)
class ProbeCounts:
    hits: int
    misses: int  # the handler did not run: recursion, or no free kretprobe instance


def read_kprobe_events(tracefs: Path) -> list[KprobeDefinition]:
    """The dynamic kprobes defined through tracefs."""
    path = Path(tracefs) / "kprobe_events"
    text = read_text(path, f"{path} does not exist (kernel built without CONFIG_KPROBE_EVENTS)")
    try:
        return _parse_kprobe_events(text)
    except ValueError as exc:
        raise KernelFactError(f"cannot parse {path}: {exc}") from exc


def read_kprobe_profile(tracefs: Path) -> dict[str, ProbeCounts]:
    """{event name: counts} for each kprobe defined through tracefs."""
    path = Path(tracefs) / "kprobe_profile"
    text = read_text(path, f"{path} does not exist (kernel built without CONFIG_KPROBE_EVENTS)")
    try:
        return _parse_kprobe_profile(text)
    except ValueError as exc:
        raise KernelFactError(f"cannot parse {path}: {exc}") from exc


def _parse_kprobe_events(text: str) -> list[KprobeDefinition]:
    definitions = []
    for line in text.splitlines():
        if not line.strip():
            continue
        match = _DEFINITION.match(line)
        if match is None:
            raise ValueError(f"bad line {line!r}")
        kind, group, name, target = match.groups()
        definitions.append(KprobeDefinition(group, name, kind == "r", target))
    return definitions


def _parse_kprobe_profile(text: str) -> dict[str, ProbeCounts]:
    # Each line is "  %-44s %15lu %15lu": name, hits, misses (kernel/trace/trace_kprobe.c).
    counts = {}
    for line in text.splitlines():
        fields = line.split()
        if not fields:
            continue
        if len(fields) != 3 or not fields[1].isdigit() or not fields[2].isdigit():
            raise ValueError(f"bad line {line!r}")
        counts[fields[0]] = ProbeCounts(int(fields[1]), int(fields[2]))
    return counts
