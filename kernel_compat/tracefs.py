"""Where tracefs is mounted, and the layout of tracepoint records it describes."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType

from ._files import read_text, under
from .fact_errors import FeatureMissing, KernelFactError
from .system.mounts import MOUNTS, read_mounts

__all__ = [
    "TRACEFS_MOUNTPOINTS",
    "TracepointField",
    "TracepointFormat",
    "find_tracefs",
    "read_tracepoint_format",
    "tracepoint_id",
]

# Preferred first: /sys/kernel/tracing exists since Linux 4.1 (tracefs split out of debugfs);
# older kernels only have the debugfs location.
TRACEFS_MOUNTPOINTS = ("/sys/kernel/tracing", "/sys/kernel/debug/tracing")

_ARRAY_SUFFIX = re.compile(r"(\[[^\]]*\])+$")
_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
# Category and event names are single path components; refuse anything that could walk elsewhere.
_TRACE_NAME = re.compile(r"[A-Za-z0-9_.-]+")


@dataclass(frozen=True)
class TracepointField:
    """One field of a tracepoint record: where it sits in the raw record.

    `type` is the C declaration without the name ("const char *", "char[16]",
    "__data_loc char[]"); `signed` is False on old kernels that did not report it.
    """

    name: str
    offset: int
    size: int
    signed: bool
    type: str = ""


@dataclass(frozen=True)
class TracepointFormat:
    """The record layout of one tracepoint, from its tracefs `format` file."""

    category: str
    name: str
    id: int
    fields: Mapping[str, TracepointField]

    def field(self, name: str) -> TracepointField:
        """Return field `name`; FeatureMissing (a KernelFactError) if this kernel lacks it."""
        try:
            return self.fields[name]
        except KeyError:
            known = ", ".join(self.fields)
            raise FeatureMissing(
                f"tracepoint {self.category}:{self.name} has no field {name!r} (fields: {known})"
            ) from None


def find_tracefs(root: str | os.PathLike[str] = "/") -> Path:
    """Return the tracefs directory (under `root`), read from /proc/self/mounts."""
    for mountpoint, via_debugfs in _tracefs_candidates(read_mounts(root)):
        path = under(root, mountpoint)
        # debugfs may be mounted on a kernel built without ftrace: then it has no tracing/.
        # stat() does not trigger the tracing/ automount (AT_NO_AUTOMOUNT is implied since 4.14).
        if not via_debugfs or path.is_dir():
            return path
    raise FeatureMissing(
        f"tracefs is not mounted at {TRACEFS_MOUNTPOINTS[0]} or {TRACEFS_MOUNTPOINTS[1]}"
        f" (per {MOUNTS})"
    )


def read_tracepoint_format(tracefs: Path, category: str, name: str) -> TracepointFormat:
    """Read events/<category>/<name>/format under the tracefs directory `tracefs`."""
    for part in (category, name):
        if not _TRACE_NAME.fullmatch(part) or part in (".", ".."):
            raise ValueError(f"invalid tracepoint name component {part!r}")
    path = Path(tracefs) / "events" / category / name / "format"
    text = read_text(path, f"tracepoint {category}:{name} does not exist in {path.parent}")
    try:
        return _parse_format(text, category)
    except ValueError as exc:
        raise KernelFactError(f"cannot parse {path}: {exc}") from exc


def tracepoint_id(tracefs: Path, category: str, name: str) -> int:
    """Return the perf event id of tracepoint <category>:<name>."""
    return read_tracepoint_format(tracefs, category, name).id


def _tracefs_candidates(mounts: list[tuple[str, str]]) -> list[tuple[str, bool]]:
    """Return (directory, via_debugfs) candidates, preferred locations first."""
    seen: dict[str, bool] = {}
    for mountpoint, fstype in mounts:
        if fstype == "tracefs":
            # A tracefs mount beats a debugfs guess for the same directory.
            seen[mountpoint] = False
        elif fstype == "debugfs":
            seen.setdefault(mountpoint.rstrip("/") + "/tracing", True)

    def rank(item: tuple[str, bool]) -> int:
        path = item[0]
        return TRACEFS_MOUNTPOINTS.index(path) if path in TRACEFS_MOUNTPOINTS else 2

    # sorted() is stable, so other mountpoints keep their mount order after the preferred ones.
    return sorted(seen.items(), key=rank)


def _parse_format(text: str, category: str = "") -> TracepointFormat:
    """Parse the text of a tracefs events/<category>/<name>/format file."""
    name: str | None = None
    ident: int | None = None
    fields: dict[str, TracepointField] = {}
    for line in text.splitlines():
        stripped = line.strip()
        if stripped.startswith("field:"):
            field = _parse_field(stripped)
            fields[field.name] = field
        elif stripped.startswith("name:"):
            name = stripped[len("name:") :].strip()
        elif stripped.startswith("ID:"):
            try:
                ident = int(stripped[len("ID:") :])
            except ValueError:
                raise ValueError(f"bad ID line {stripped!r}") from None
        elif stripped.startswith("print fmt:"):
            # Everything after is the printk format, which may contain "field:" text.
            break
    if not name:
        raise ValueError("no 'name:' line")
    if ident is None:
        raise ValueError("no 'ID:' line")
    return TracepointFormat(category, name, ident, MappingProxyType(fields))


def _parse_field(line: str) -> TracepointField:
    """Parse one "field:<decl>;\toffset:N;\tsize:N;\tsigned:N;" line."""
    attrs: dict[str, str] = {}
    for part in line.split(";"):
        key, sep, value = part.strip().partition(":")
        if sep:
            attrs[key] = value.strip()
    try:
        decl = attrs["field"]
        offset = int(attrs["offset"])
        size = int(attrs["size"])
        # "signed:" appeared in 2.6.3x kernels; older ones omit it.
        signed = attrs.get("signed", "0") == "1"
    except (KeyError, ValueError):
        raise ValueError(f"bad field line {line!r}") from None
    # "char comm[16]", "__data_loc char[] filename", "const char * filename", "char *name".
    array = _ARRAY_SUFFIX.search(decl)
    suffix = array.group(0) if array else ""
    base = decl[: array.start()] if array else decl
    tokens = re.split(r"[\s*]+", base.strip())
    field_name = tokens[-1]
    if not _IDENTIFIER.fullmatch(field_name) or len(tokens) < 2:
        raise ValueError(f"cannot find the field name in {decl!r}")
    prefix = base.rstrip()[: -len(field_name)]
    ctype = " ".join(prefix.replace("*", " * ").split()) + suffix
    return TracepointField(field_name, offset, size, signed, ctype)
