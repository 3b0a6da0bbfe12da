"""The filter kinds, in one table: what each is called (the CLI option and the API keyword),
how a user's values become what the programs compile in (cgroup paths and container id prefixes
become cgroup ids, names become bytes), which Filters field holds them, what the kernel needs to
compare them, and which field of an event they match in user space.

A new kind is a row here plus its compare in bpf_bytecode/programs/filters.py; the CLI, the plan
and the placing of kinds (rawtrace.filters.placing) read this table."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from operator import attrgetter
from pathlib import Path
from typing import Any, Callable, Union

from bpf_bytecode.programs.filters import COMM_SIZE, Filters
from kernel_compat import FeatureMissing, KernelFactError
from kernel_compat.system.cgroups import cgroup2_mountpoint, cgroup_id, container_cgroups
from rawtrace.errors import UsageError, reason
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


def _pid_max() -> int:
    """The kernel's pid_max: every pid and tid is below it."""
    try:
        return int(Path("/proc/sys/kernel/pid_max").read_text())
    except (OSError, ValueError):
        return 1 << 22  # PID_MAX_LIMIT: no kernel allows more


def whole_number(option: str, value: Any, low: int, high: int) -> int:
    """`value` if it is an int from `low` to `high`; a UsageError naming `option` otherwise
    (a bool is refused: True is no process)."""
    if type(value) is not int:
        raise UsageError(
            f"{option} takes a whole number, not {type(value).__name__} {value!r}",
            f"give one from {low} to {high}",
        )
    if not low <= value <= high:
        raise UsageError(f"{option} {value} is out of range", f"give one from {low} to {high}")
    return value


def check_pid(option: str, value: Any) -> int:
    """A pid or tid this kernel can hand out: 1 to pid_max - 1."""
    return whole_number(option, value, 1, _pid_max() - 1)


def _pids(value: Any) -> tuple[int, ...]:
    return (check_pid("--pid", value),)


def _tids(value: Any) -> tuple[int, ...]:
    return (check_pid("--tid", value),)


def _uids(value: Any) -> tuple[int, ...]:
    # (uid_t)-1 is no one's id: the kernel uses it for "unchanged"
    return (whole_number("--uid", value, 0, (1 << 32) - 2),)


def _comms(name: Any) -> tuple[bytes, ...]:
    if not isinstance(name, str):
        raise UsageError(f"--comm takes a name, not {type(name).__name__} {name!r}")
    encoded = os.fsencode(name)  # as the kernel holds it: argv's undecodable bytes included
    if not 0 < len(encoded) < COMM_SIZE or b"\0" in encoded:
        raise UsageError(
            f"--comm {name!r} can be no process's name",
            f"give 1 to {COMM_SIZE - 1} bytes without NUL, as /proc/PID/comm shows them",
        )
    return (encoded,)


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


def _cgroup_ids(cgroup: Any) -> tuple[int, ...]:
    return (_cgroup_id(cgroup),)


def _container_ids(prefix: Any) -> tuple[int, ...]:
    if not isinstance(prefix, str):
        raise UsageError(f"--container takes an id prefix, not {type(prefix).__name__}")
    return tuple(cgroup_id(path) for path in _container(prefix))


KINDS: tuple[FilterKind, ...] = (
    # the kernel compares the host's ids (bpf_get_current_pid_tgid)
    FilterKind(
        "pid",
        "pids",
        CURRENT_PID_TGID,
        attrgetter("host_process_id"),
        _pids,
        int,
        "the caller's process id",
    ),
    FilterKind(
        "tid",
        "tids",
        CURRENT_PID_TGID,
        attrgetter("host_thread_id"),
        _tids,
        int,
        "the caller's thread id",
    ),
    FilterKind(
        "uid",
        "uids",
        CURRENT_UID_GID,
        attrgetter("user_id"),
        _uids,
        int,
        "the caller's user id",
    ),
    FilterKind(
        "comm",
        "comms",
        CURRENT_COMM,
        attrgetter("process_name"),
        _comms,
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


def _many(name: str, value: FilterValues) -> tuple[Any, ...]:
    """One value, several, or none, as a tuple (a string is one value)."""
    if value is None:
        return ()
    if isinstance(value, (str, int)):
        return (value,)
    if not isinstance(value, (list, tuple, set, frozenset)):
        raise UsageError(
            f"{name}= takes a value or a list of them, not {type(value).__name__} {value!r}"
        )
    return tuple(value)


def build_filters(values: Mapping[str, FilterValues]) -> Filters:
    """The Filters the programs compile in, from each kind's values (by kind name)."""
    fields: dict[str, Any] = {}
    for name, given in values.items():
        kind = BY_NAME.get(name)
        if kind is None:
            raise UsageError(f"unknown filter {name!r}", f"filter on one of {', '.join(BY_NAME)}")
        converted = tuple(v for value in _many(name, given) for v in kind.convert(value))
        fields[kind.values] = fields.get(kind.values, ()) + converted
    try:
        return Filters(**fields)
    except ValueError as exc:
        raise UsageError(f"bad filter: {exc}", "give fewer values, or shorter names") from exc


def _cgroup_id(cgroup: Any) -> int:
    """An id as given, or the id of a cgroup named as /proc/PID/cgroup names it (relative to
    the cgroup2 mount, "/" being the root cgroup) or by its directory under that mount."""
    if isinstance(cgroup, str) and cgroup.isascii() and cgroup.isdigit():
        cgroup = int(cgroup)
    if not isinstance(cgroup, str):
        return whole_number("--cgroup", cgroup, 1, (1 << 64) - 1)
    fix = "give a path as /proc/PID/cgroup shows it, a directory under the cgroup2 mount, or an id"
    try:
        mount = cgroup2_mountpoint()
        path = Path(os.path.normpath(cgroup))
        if not (path == mount or mount in path.parents):
            path = Path(os.path.normpath(mount / cgroup.lstrip("/")))
        if not (path == mount or mount in path.parents) or not (path / "cgroup.procs").is_file():
            raise UsageError(f"--cgroup {cgroup!r} names no cgroup", fix)
        return cgroup_id(path)
    except (FeatureMissing, KernelFactError, OSError, ValueError) as exc:
        raise UsageError(f"--cgroup {cgroup!r}: {reason(exc)}", fix) from exc


def _container(prefix: str) -> list[Path]:
    try:
        found = container_cgroups(prefix.lower())
    except (ValueError, FeatureMissing) as exc:
        raise UsageError(f"cannot filter on container {prefix!r}: {exc}") from exc
    if not found:
        raise UsageError(
            f"no running container has an id starting with {prefix!r}",
            "start the container first; its cgroup is looked up when tracing starts",
        )
    return found
