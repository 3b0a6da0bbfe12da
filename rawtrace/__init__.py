"""rawtrace: an eBPF tracer in pure Python, with no compiler, BCC or kernel headers at run time.

>>> import rawtrace
>>> with rawtrace.trace("vfork") as tracer:    # doctest: +SKIP
...     for event in tracer:
...         print(event.process_name, event.arg("pid"))
"""

from rawtrace.errors import (
    KernelFeatureMissing,
    PermissionMissing,
    RawtraceError,
    UsageError,
    VerifierError,
)
from rawtrace.events.event import Arg, Event
from rawtrace.outputs.process_tree import ProcessTree
from rawtrace.tracer import Tracer, TraceStats, trace

__version__ = "0.1.0"

__all__ = [
    "Arg",
    "Event",
    "KernelFeatureMissing",
    "PermissionMissing",
    "ProcessTree",
    "RawtraceError",
    "TraceStats",
    "Tracer",
    "UsageError",
    "VerifierError",
    "__version__",
    "trace",
]
