"""Attach to a tracepoint (tracefs events/<category>/<name>) through a perf event.

A tracepoint program fires on every CPU from one perf event opened with pid=-1, cpu=0: the event
is a handle for the attachment, not a per-CPU counter. Opening one per CPU would run the program
once per CPU for every hit.
"""

from __future__ import annotations

from pathlib import Path

from kernel_compat import read_tracepoint_format
from rawtrace.attach.perf_event import PerfEventLink, attach_perf_event
from rawtrace.perf_event import PERF_SAMPLE_RAW, PerfEvent, PerfType, perf_event_attr
from rawtrace.programs import Program


def attach_tracepoint(program: Program, tracefs: Path, category: str, name: str) -> PerfEventLink:
    tracepoint = read_tracepoint_format(tracefs, category, name)
    attr = perf_event_attr(
        PerfType.TRACEPOINT,
        tracepoint.id,
        sample_period=1,
        sample_type=PERF_SAMPLE_RAW,
        wakeup=1,
    )
    event = PerfEvent.open(attr, pid=-1, cpu=0)
    return attach_perf_event(event, program, f"tracepoint {category}:{name}")
