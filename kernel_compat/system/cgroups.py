"""Cgroup v2 facts: where the hierarchy is mounted, a cgroup's id, and containers' cgroups.

A cgroup v2 id, as bpf_get_current_cgroup_id() returns it, is the inode number of the cgroup's
directory (kernfs, since 5.5 one 64-bit number).
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from .._files import under
from ..fact_errors import FeatureMissing, KernelFactError
from .mounts import read_mounts

# A container runtime names a container's cgroup after its 64-hex-digit id: docker-<id>.scope
# (docker under systemd), cri-containerd-<id>.scope, crio-<id>.scope, libpod-<id>.scope
# (podman), or a bare <id> directory (docker with cgroupfs, kubepods).
_CONTAINER_ID = re.compile(r"(?:^|[-/])([0-9a-f]{64})(?:\.scope)?$")


def cgroup2_mountpoint(root: str | os.PathLike[str] = "/") -> Path:
    """The directory of the cgroup v2 hierarchy (under `root`)."""
    for mountpoint, fstype in read_mounts(root):
        if fstype == "cgroup2":
            return under(root, mountpoint)
    raise FeatureMissing("no cgroup2 filesystem is mounted (per /proc/self/mounts)")


def cgroup_id(path: str | os.PathLike[str]) -> int:
    """The id of the cgroup v2 directory at `path`."""
    try:
        return os.stat(path).st_ino
    except FileNotFoundError as exc:
        raise FeatureMissing(f"no cgroup at {os.fspath(path)}") from exc
    except OSError as exc:
        raise KernelFactError(f"cannot stat {os.fspath(path)}: {exc.strerror}") from exc


def container_id(cgroup_path: str) -> str | None:
    """The container id that a cgroup path carries, if it names one."""
    match = _CONTAINER_ID.search(cgroup_path.rstrip("/"))
    return match.group(1) if match else None


def container_cgroups(prefix: str, root: str | os.PathLike[str] = "/") -> list[Path]:
    """The cgroup directories of containers whose id starts with `prefix`."""
    if not re.fullmatch(r"[0-9a-f]{1,64}", prefix):
        raise ValueError(f"a container id is hexadecimal, not {prefix!r}")
    found = []
    for directory, subdirs, _files in os.walk(cgroup2_mountpoint(root)):
        for name in subdirs:
            found_id = container_id(name)
            if found_id is not None and found_id.startswith(prefix):
                found.append(Path(directory, name))
    return found


def container_ids(root: str | os.PathLike[str] = "/") -> dict[int, str]:
    """Every cgroup in a container, by id: the container id of the nearest cgroup on its path
    (itself or an ancestor) that carries one. Other cgroups are not listed.

    A cgroup's id is its directory's inode number, which readdir gives with each name (kernfs
    fills d_ino with it), so the walk stats nothing. A cgroup removed during the walk is
    skipped with its subtree."""
    found: dict[int, str] = {}
    _walk(cgroup2_mountpoint(root), None, found)
    return found


def _walk(directory: Path | str, inherited: str | None, found: dict[int, str]) -> None:
    try:
        entries = list(os.scandir(directory))
    except OSError:  # removed under us, or unreadable: nothing to list there
        return
    for entry in entries:
        if not entry.is_dir(follow_symlinks=False):
            continue
        own = container_id(entry.name) or inherited
        if own is not None:
            found[entry.inode()] = own
        _walk(entry.path, own, found)
