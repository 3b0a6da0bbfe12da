"""Turning what a user filters on into the Filters the programs compile in: cgroup paths and
container id prefixes become cgroup ids, names become bytes, single values become tuples."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, Union

from bpf_bytecode.programs.filters import Filters
from kernel_compat import FeatureMissing
from kernel_compat.system.cgroups import cgroup2_mountpoint, cgroup_id, container_cgroups
from rawtrace.errors import RawtraceError

Ints = Union[int, Sequence[int], None]
Strs = Union[str, Sequence[str], None]
Cgroups = Union[str, int, Sequence[Union[str, int]], None]


def _many(value: Cgroups) -> tuple[Any, ...]:
    """One value, several, or none, as a tuple (a string is one value)."""
    if value is None:
        return ()
    if isinstance(value, (str, int)):
        return (value,)
    return tuple(value)


def build_filters(
    *,
    pid: Ints = None,
    tid: Ints = None,
    uid: Ints = None,
    comm: Strs = None,
    cgroup: Cgroups = None,
    container: Strs = None,
    followed_fd: int | None = None,
) -> Filters:
    comms = tuple(name.encode() for name in _many(comm))
    cgroups = tuple(_cgroup_id(c) for c in _many(cgroup))
    cgroups += tuple(cgroup_id(path) for prefix in _many(container) for path in _container(prefix))
    try:
        return Filters(
            pids=_many(pid),
            tids=_many(tid),
            uids=_many(uid),
            comms=comms,
            cgroups=cgroups,
            followed_fd=followed_fd,
        )
    except ValueError as exc:
        raise RawtraceError(f"bad filter: {exc}", "give fewer values, or shorter names") from exc


def _cgroup_id(cgroup: str | int) -> int:
    """An id as given, or the id of a cgroup directory: absolute, or relative to the cgroup2
    mount (as /proc/PID/cgroup shows it)."""
    if isinstance(cgroup, int):
        return cgroup
    if cgroup.isdigit():
        return int(cgroup)
    path = Path(cgroup)
    try:
        if not path.is_dir():
            path = cgroup2_mountpoint() / cgroup.lstrip("/")
        return cgroup_id(path)
    except FeatureMissing as exc:
        raise RawtraceError(
            f"cannot filter on cgroup {cgroup!r}: {exc}",
            "give a cgroup v2 directory, a path as /proc/PID/cgroup shows it, or an id",
        ) from exc


def _container(prefix: str) -> list[Path]:
    try:
        found = container_cgroups(prefix.lower())
    except (ValueError, FeatureMissing) as exc:
        raise RawtraceError(f"cannot filter on container {prefix!r}: {exc}") from exc
    if not found:
        raise RawtraceError(
            f"no running container has an id starting with {prefix!r}",
            "start the container first; its cgroup is looked up when tracing starts",
        )
    return found
