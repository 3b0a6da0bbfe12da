"""The filter kinds, in one table: what each is called (the CLI option and the API keyword),
how a user's values become what the programs compile in (cgroup paths and container id prefixes
become cgroup ids, names become bytes), which Filters field holds them, what the kernel needs to
compare them, and which field of an event they match in user space.

A new kind is a row here plus its compare in bpf_bytecode/programs/filters.py; the CLI, the plan
and the placing of kinds (rawtrace.filters.placing) read this table."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from operator import attrgetter
from pathlib import Path
from typing import Any, Callable, Union

from bpf_bytecode.programs.filters import Filters
from kernel_compat import FeatureMissing
from kernel_compat.system.cgroups import cgroup2_mountpoint, cgroup_id, container_cgroups
from rawtrace.errors import RawtraceError
from rawtrace.events.event import Event, kernel_string
from rawtrace.kernel.feature_probes import (
    CURRENT_CGROUP_ID,
    CURRENT_COMM,
    CURRENT_PID_TGID,
    CURRENT_UID_GID,
    FeatureProbe,
)

# One value or several (any of them matches); a string is one value.
FilterValues = Union[str, int, Sequence[Union[str, int]], None]


def _same(value: Any) -> Any:
    return value


def _as_given(value: Any) -> tuple[Any, ...]:
    return (value,)


def _encoded(name: str) -> tuple[bytes, ...]:
    return (name.encode(),)


@dataclass(frozen=True)
class FilterKind:
    """A kind of filter: its name, its values' Filters field, what it needs in BPF, what it
    compares in an event, and how a user's value becomes the field's values."""

    name: str  # as the CLI option and the API keyword
    values: str  # the Filters field that holds its values
    needs: FeatureProbe
    field: Callable[[Event], Any]
    convert: Callable[[Any], tuple[Any, ...]] = _as_given  # a user's value -> field values
    value_type: type = int  # what the CLI parses a value as
    help: str = ""
    spell: Callable[[Any], Any] = _same  # a field value as the event spells it


def _cgroup_ids(cgroup: str | int) -> tuple[int, ...]:
    return (_cgroup_id(cgroup),)


def _container_ids(prefix: str) -> tuple[int, ...]:
    return tuple(cgroup_id(path) for path in _container(prefix))


KINDS: tuple[FilterKind, ...] = (
    # the kernel compares the host's ids (bpf_get_current_pid_tgid)
    FilterKind(
        "pid",
        "pids",
        CURRENT_PID_TGID,
        attrgetter("host_process_id"),
        _as_given,
        int,
        "the caller's process id",
    ),
    FilterKind(
        "tid",
        "tids",
        CURRENT_PID_TGID,
        attrgetter("host_thread_id"),
        _as_given,
        int,
        "the caller's thread id",
    ),
    FilterKind(
        "uid",
        "uids",
        CURRENT_UID_GID,
        attrgetter("user_id"),
        _as_given,
        int,
        "the caller's user id",
    ),
    FilterKind(
        "comm",
        "comms",
        CURRENT_COMM,
        attrgetter("process_name"),
        _encoded,
        str,
        "the caller's name (comm)",
        kernel_string,
    ),
    # --cgroup and --container both become cgroup ids
    FilterKind(
        "cgroup",
        "cgroups",
        CURRENT_CGROUP_ID,
        attrgetter("cgroup_id"),
        _cgroup_ids,
        str,
        "a cgroup v2 path (as in /proc/PID/cgroup) or id",
    ),
    FilterKind(
        "container",
        "cgroups",
        CURRENT_CGROUP_ID,
        attrgetter("cgroup_id"),
        _container_ids,
        str,
        "a container id prefix",
    ),
)
BY_NAME: Mapping[str, FilterKind] = {kind.name: kind for kind in KINDS}


def _many(value: FilterValues) -> tuple[Any, ...]:
    """One value, several, or none, as a tuple (a string is one value)."""
    if value is None:
        return ()
    if isinstance(value, (str, int)):
        return (value,)
    return tuple(value)


def build_filters(values: Mapping[str, FilterValues]) -> Filters:
    """The Filters the programs compile in, from each kind's values (by kind name)."""
    fields: dict[str, Any] = {}
    for name, given in values.items():
        kind = BY_NAME.get(name)
        if kind is None:
            raise RawtraceError(
                f"unknown filter {name!r}", f"filter on one of {', '.join(BY_NAME)}"
            )
        converted = tuple(v for value in _many(given) for v in kind.convert(value))
        fields[kind.values] = fields.get(kind.values, ()) + converted
    try:
        return Filters(**fields)
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
