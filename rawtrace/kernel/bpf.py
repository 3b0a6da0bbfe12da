"""The bpf() commands rawtrace uses, with their attribute layouts (union bpf_attr in
include/uapi/linux/bpf.h). Each function packs one command's attributes and makes one call."""

from __future__ import annotations

import errno
import struct
from enum import IntEnum

from rawtrace.kernel.ffi import address_of, bpf

# The kernel accepts a larger attr than it knows as long as the tail is zero, so one size serves
# every command on every kernel since 4.18.
ATTR_SIZE = 144
OBJ_NAME_LEN = 16


class Cmd(IntEnum):
    MAP_CREATE = 0
    MAP_LOOKUP_ELEM = 1
    MAP_UPDATE_ELEM = 2
    MAP_DELETE_ELEM = 3
    MAP_GET_NEXT_KEY = 4
    PROG_LOAD = 5
    PROG_GET_FD_BY_ID = 13
    MAP_GET_FD_BY_ID = 14
    OBJ_GET_INFO_BY_FD = 15
    RAW_TRACEPOINT_OPEN = 17
    LINK_CREATE = 28


class MapType(IntEnum):
    HASH = 1
    ARRAY = 2
    PERF_EVENT_ARRAY = 4
    PERCPU_ARRAY = 6
    LRU_HASH = 9
    RINGBUF = 27


class ProgType(IntEnum):
    SOCKET_FILTER = 1
    KPROBE = 2
    TRACEPOINT = 5
    RAW_TRACEPOINT = 17
    TRACING = 26


class AttachType(IntEnum):
    NONE = 0
    TRACE_RAW_TP = 23
    PERF_EVENT = 41


def _attr() -> bytearray:
    return bytearray(ATTR_SIZE)


def object_name(name: str) -> bytes:
    """A map or program name as the kernel takes it: at most 15 characters of [A-Za-z0-9_.]."""
    clean = "".join(c if c.isalnum() or c in "_." else "_" for c in name)
    return clean.encode("ascii", "replace")[: OBJ_NAME_LEN - 1]


def map_create(
    map_type: MapType, key_size: int, value_size: int, max_entries: int, name: str, flags: int = 0
) -> int:
    attr = _attr()
    struct.pack_into("<IIIII", attr, 0, map_type, key_size, value_size, max_entries, flags)
    struct.pack_into(f"{OBJ_NAME_LEN}s", attr, 28, object_name(name))
    return bpf(Cmd.MAP_CREATE, attr)


def map_update_elem(map_fd: int, key: bytes, value: bytes, flags: int = 0) -> None:
    key_buf, value_buf = bytearray(key), bytearray(value)
    attr = _attr()
    struct.pack_into("<I4xQQQ", attr, 0, map_fd, address_of(key_buf), address_of(value_buf), flags)
    bpf(Cmd.MAP_UPDATE_ELEM, attr)


def map_lookup_elem(map_fd: int, key: bytes, value_size: int) -> bytes:
    """The value under key; raises OSError(ENOENT) when there is none."""
    key_buf, value_buf = bytearray(key), bytearray(value_size)
    attr = _attr()
    struct.pack_into("<I4xQQ", attr, 0, map_fd, address_of(key_buf), address_of(value_buf))
    bpf(Cmd.MAP_LOOKUP_ELEM, attr)
    return bytes(value_buf)


def map_delete_elem(map_fd: int, key: bytes) -> None:
    key_buf = bytearray(key)
    attr = _attr()
    struct.pack_into("<I4xQ", attr, 0, map_fd, address_of(key_buf))
    bpf(Cmd.MAP_DELETE_ELEM, attr)


def map_get_next_key(map_fd: int, key: bytes | None, key_size: int) -> bytes | None:
    """The key after `key` (the first key for None); None past the last."""
    key_buf, next_buf = bytearray(key or b""), bytearray(key_size)
    attr = _attr()
    struct.pack_into(
        "<I4xQQ", attr, 0, map_fd, address_of(key_buf) if key else 0, address_of(next_buf)
    )
    try:
        bpf(Cmd.MAP_GET_NEXT_KEY, attr)
    except OSError as exc:
        if exc.errno == errno.ENOENT:
            return None
        raise
    return bytes(next_buf)


def prog_load(
    prog_type: ProgType,
    code: bytes,
    name: str,
    *,
    license: str = "GPL",
    log: bytearray | None = None,
    expected_attach_type: AttachType = AttachType.NONE,
    attach_btf_id: int = 0,
    kern_version: int = 0,
) -> int:
    """BPF_PROG_LOAD. With a `log` buffer the verifier writes its level-1 log into it."""
    code_buf = bytearray(code)
    license_buf = bytearray(license.encode() + b"\0")
    log_buf = log if log is not None else bytearray(1)
    attr = _attr()
    struct.pack_into(
        "<IIQQIIQII16sII",
        attr,
        0,
        prog_type,
        len(code) // 8,
        address_of(code_buf),
        address_of(license_buf),
        1 if log is not None else 0,
        len(log_buf) if log is not None else 0,
        address_of(log_buf) if log is not None else 0,
        kern_version,
        0,
        object_name(name),
        0,
        expected_attach_type,
    )
    struct.pack_into("<I", attr, 108, attach_btf_id)
    return bpf(Cmd.PROG_LOAD, attr)


def link_create(prog_fd: int, target_fd: int, attach_type: AttachType) -> int:
    attr = _attr()
    struct.pack_into("<IIII", attr, 0, prog_fd, target_fd, attach_type, 0)
    return bpf(Cmd.LINK_CREATE, attr)


def raw_tracepoint_open(name: str | None, prog_fd: int) -> int:
    """BPF_RAW_TRACEPOINT_OPEN: attach a raw tracepoint program to tracepoint `name`, or a
    tp_btf program (name None) to the tracepoint its attach_btf_id names. Closing the fd
    detaches."""
    name_buf = bytearray(name.encode() + b"\0") if name is not None else None
    attr = _attr()
    struct.pack_into("<QI", attr, 0, address_of(name_buf) if name_buf is not None else 0, prog_fd)
    return bpf(Cmd.RAW_TRACEPOINT_OPEN, attr)


def obj_get_info_by_fd(fd: int, size: int) -> bytes:
    """BPF_OBJ_GET_INFO_BY_FD: the first `size` bytes of a program's, map's or link's info
    struct. Fields a kernel does not know stay zero."""
    info = bytearray(size)
    attr = _attr()
    struct.pack_into("<IIQ", attr, 0, fd, size, address_of(info))
    bpf(Cmd.OBJ_GET_INFO_BY_FD, attr)
    return bytes(info)


def prog_get_fd_by_id(prog_id: int) -> int:
    """BPF_PROG_GET_FD_BY_ID: a new fd of the loaded program with this id, for the caller to
    close; OSError(ENOENT) once the program is freed."""
    attr = _attr()
    struct.pack_into("<I", attr, 0, prog_id)
    return bpf(Cmd.PROG_GET_FD_BY_ID, attr)


def map_get_fd_by_id(map_id: int) -> int:
    """BPF_MAP_GET_FD_BY_ID: a new fd of the map with this id, for the caller to close;
    OSError(ENOENT) once the map is freed."""
    attr = _attr()
    struct.pack_into("<I", attr, 0, map_id)
    return bpf(Cmd.MAP_GET_FD_BY_ID, attr)
