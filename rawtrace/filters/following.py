"""Following a process and its descendants: the map of followed tgids, and the sched
tracepoint programs that keep it current (bpf_bytecode/programs/follow.py)."""

from __future__ import annotations

from contextlib import ExitStack
from pathlib import Path

from bpf_bytecode.programs.follow import follow_forks, forget_frees
from kernel_compat import read_tracepoint_format
from rawtrace.attach.tracepoint import attach_tracepoint
from rawtrace.errors import RawtraceError
from rawtrace.kernel.bpf import MapType, ProgType
from rawtrace.kernel.loading import OwnedPrograms
from rawtrace.kernel.maps import Map

FOLLOWED_ENTRIES = 65536  # processes and threads in a followed tree at once


def follow_tree(pid: int, tracefs: Path, resources: ExitStack, links: ExitStack) -> Map:
    """The map of followed tgids, holding `pid`, and the programs that grow it; everything is
    owned by `resources` (map, programs) and `links` (attachments)."""
    try:
        with open(f"/proc/{pid}/status"):
            pass
    except FileNotFoundError:
        raise RawtraceError(f"cannot follow process {pid}: it does not exist") from None
    followed = resources.enter_context(
        Map.create(
            MapType.HASH,
            key_size=4,
            value_size=4,
            max_entries=FOLLOWED_ENTRIES,
            name="rawtrace_follow",
        )
    )
    followed.update(pid.to_bytes(4, "little"), pid.to_bytes(4, "little"))
    programs = OwnedPrograms("follow", resources)
    fork = read_tracepoint_format(tracefs, "sched", "sched_process_fork")
    forks = programs.load(
        "forks",
        ProgType.TRACEPOINT,
        follow_forks(followed.fileno(), fork.field("child_pid").offset),
    )
    free = read_tracepoint_format(tracefs, "sched", "sched_process_free")
    frees = programs.load(
        "frees",
        ProgType.TRACEPOINT,
        forget_frees(followed.fileno(), free.field("pid").offset),
    )
    links.callback(attach_tracepoint(forks, tracefs, "sched", "sched_process_fork").close)
    links.callback(attach_tracepoint(frees, tracefs, "sched", "sched_process_free").close)
    return followed
