"""rawtrace: an eBPF tracer in pure Python, with no compiler, BCC or kernel headers at run time.

>>> import rawtrace
>>> with rawtrace.trace("vfork") as tracer:    # doctest: +SKIP
...     for event in tracer:
...         print(event.process_name, event.arg("pid"))
"""

from rawtrace import lowlevel
from rawtrace.errors import (
    KernelFeatureMissing,
    PermissionMissing,
    RawtraceError,
    UsageError,
    VerifierError,
)
from rawtrace.events.declaring import EventSpec, kprobe_event, syscall_event
from rawtrace.events.event import Arg, Event
from rawtrace.events.tracepoint_events import tracepoint_event
from rawtrace.outputs.process_tree import ProcessTree
from rawtrace.tracer import Tracer, TraceStats, trace

__version__ = "0.1.0"

__all__ = [
    "Arg",
    "Event",
    "EventSpec",
    "KernelFeatureMissing",
    "PermissionMissing",
    "ProcessTree",
    "RawtraceError",
    "TraceStats",
    "Tracer",
    "UsageError",
    "VerifierError",
    "__version__",
    "kprobe_event",
    "lowlevel",
    "syscall_event",
    "trace",
    "tracepoint_event",
]
