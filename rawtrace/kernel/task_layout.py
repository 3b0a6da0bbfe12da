"""The TaskLayout the programs walk, read from this kernel's BTF: rawtrace's stand-in for CO-RE.

Reading the BTF costs 0.1-0.2 s of every start; the layout cannot change before the next boot,
and /run is emptied at boot, so a copy in /run/rawtrace keyed by the boot id, the BTF's size and
the code that made it stays current. rawtrace runs as root and trusts only what root could have
written: a directory owned by someone else or writable by others is not used, no symlink is
followed (the file is opened relative to the directory's fd with O_NOFOLLOW), only a regular
file of at most _MOST bytes is read (a FIFO or /dev/zero in its place cannot hang rawtrace or
fill its memory), and every value must be an offset of the right alignment within its struct.
Anything wrong is rebuilt from BTF: never a hang or a traceback.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import stat
import struct
import sys
from collections.abc import Iterator
from dataclasses import asdict, fields
from pathlib import Path
from typing import Any, Callable

from bpf_bytecode.programs import task
from kernel_compat import (
    Btf,
    FeatureMissing,
    KernelFactError,
    Member,
    boot_id,
    load_vmlinux_btf,
    vmlinux_btf_path,
)

TaskLayout = task.TaskLayout
_POINTER = struct.calcsize("P")


def _pointer(member: Member) -> int:
    if not member.is_pointer:
        raise KernelFactError(f"{member.name} is {member.type_name}, not a pointer, in this BTF")
    return member.offset


def _u32(member: Member) -> int:
    if member.size != 4 or member.bitfield:
        raise KernelFactError(f"{member.name} is {member.type_name}, not 4 bytes, in this BTF")
    return member.offset


def _u64(member: Member) -> int:
    if member.size != 8 or member.bitfield:
        raise KernelFactError(f"{member.name} is {member.type_name}, not 8 bytes, in this BTF")
    return member.offset


# Each offset: the struct and member it is read from, and its check (which fixes its alignment)
_FIELDS: dict[str, tuple[str, str, Callable[[Member], int]]] = {
    "task_real_parent": ("task_struct", "real_parent", _pointer),
    "task_group_leader": ("task_struct", "group_leader", _pointer),
    "task_tgid": ("task_struct", "tgid", _u32),
    "task_thread_pid": ("task_struct", "thread_pid", _pointer),
    "task_nsproxy": ("task_struct", "nsproxy", _pointer),
    "nsproxy_mnt_ns": ("nsproxy", "mnt_ns", _pointer),
    "mnt_ns_inum": ("mnt_namespace", "ns.inum", _u32),
    "pid_level": ("pid", "level", _u32),
    "upid_nr": ("upid", "nr", _u32),
    "upid_ns": ("upid", "ns", _pointer),
    "pid_ns_inum": ("pid_namespace", "ns.inum", _u32),
    "task_exit_code": ("task_struct", "exit_code", _u32),
    "task_signal": ("task_struct", "signal", _pointer),
    "signal_live": ("signal_struct", "live.counter", _u32),
    "task_start_time": ("task_struct", "start_time", _u64),
    "task_mm": ("task_struct", "mm", _pointer),
    "mm_arg_start": ("mm_struct", "arg_start", _u64),
    "mm_arg_end": ("mm_struct", "arg_end", _u64),
}
_ALIGNMENT: dict[Callable[[Member], int], int] = {_pointer: _POINTER, _u32: 4, _u64: 8}
_STRUCT_MOST = 1 << 16  # bytes: task_struct, the largest, is about 10 KiB


def layout_from_btf(btf: Btf) -> TaskLayout:
    numbers = btf.field("pid", "numbers")
    offsets = {name: check(btf.field(*where)) for name, (*where, check) in _FIELDS.items()}
    return TaskLayout(pid_numbers=numbers.offset, upid_size=numbers.element_size, **offsets)


def valid_layout(values: Any) -> TaskLayout | None:
    """The layout `values` (a dict) describe, if each is an int offset of its field's
    alignment within a struct; None otherwise."""
    names = {field.name for field in fields(TaskLayout)}
    if not isinstance(values, dict) or set(values) != names:
        return None
    if not all(type(value) is int and 0 <= value < _STRUCT_MOST for value in values.values()):
        return None
    aligned = all(values[name] % _ALIGNMENT[check] == 0 for name, (*_, check) in _FIELDS.items())
    upid = values["upid_size"]
    if not aligned or upid < 2 * _POINTER or upid % _POINTER or values["pid_numbers"] % _POINTER:
        return None
    return TaskLayout(**values)


CACHE_DIR = Path("/run/rawtrace")
_NAME = "task-layout.json"
_MOST = 4096  # bytes: a saved layout takes about 500


def task_layout(directory: Path = CACHE_DIR) -> TaskLayout | None:
    """This kernel's layout, or None where it has no BTF (the fields are then reported as 0).
    `directory` holds the cache (made if missing); tests pass their own."""
    try:
        key = cache_key()
    except FeatureMissing:  # no BTF
        return None
    with contextlib.suppress(OSError), _trusted_directory(directory) as dirfd:
        saved = _read_small(dirfd)
        if isinstance(saved, dict) and saved.get("key") == key:
            layout = valid_layout(saved.get("layout"))
            if layout is not None:
                return layout
    try:
        layout = layout_from_btf(load_vmlinux_btf())
    except FeatureMissing:
        return None
    with contextlib.suppress(OSError), _trusted_directory(directory) as dirfd:
        _write(dirfd, json.dumps({"key": key, "layout": asdict(layout)}))
    return layout


def cache_key() -> str:
    """What the cache stays true for: this boot, this BTF and the code that reads the layout."""
    code = hashlib.sha256()
    for module in (sys.modules[__name__], task):
        # through the loader: from a zipped wheel there is no file to read
        get_source = getattr(module.__loader__, "get_source", None)
        source = get_source(module.__name__) if get_source is not None else None
        code.update((source or "").encode())
    btf_size = vmlinux_btf_path().stat().st_size
    return f"{boot_id()}/{btf_size}/{code.hexdigest()[:16]}"


@contextlib.contextmanager
def _trusted_directory(directory: Path) -> Iterator[int]:
    """An fd of `directory`, made if missing, if it is ours and no one else can write it;
    OSError otherwise."""
    with contextlib.suppress(FileExistsError):
        directory.mkdir(mode=0o755)
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
    try:
        _check_ours(os.fstat(fd), directory)
        yield fd
    finally:
        os.close(fd)


def _check_ours(status: os.stat_result, path: Path | str) -> None:
    if status.st_uid != os.geteuid() or status.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        raise PermissionError(f"{path} is not ours alone: not trusted")


def _read_small(dirfd: int) -> Any:
    """The saved JSON, if the file is a regular file of ours of at most _MOST bytes."""
    flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC  # a FIFO opens at once
    try:
        fd = os.open(_NAME, flags, dir_fd=dirfd)
    except FileNotFoundError:
        return None
    try:
        status = os.fstat(fd)
        _check_ours(status, _NAME)
        if not stat.S_ISREG(status.st_mode) or status.st_size > _MOST:
            return None
        return json.loads(os.read(fd, _MOST + 1))
    except ValueError:  # not JSON, or not UTF-8
        return None
    finally:
        os.close(fd)


def _write(dirfd: int, text: str) -> None:
    """Replace the file at once: a new file (never an existing one), then a rename."""
    temporary = f".{_NAME}.{os.getpid()}"
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
    with contextlib.suppress(FileNotFoundError):
        os.unlink(temporary, dir_fd=dirfd)  # left by a process of this pid before a crash
    fd = os.open(temporary, flags, 0o644, dir_fd=dirfd)
    try:
        os.write(fd, text.encode())
    finally:
        os.close(fd)
    os.replace(temporary, _NAME, src_dir_fd=dirfd, dst_dir_fd=dirfd)
