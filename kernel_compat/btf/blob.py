"""The BTF blob's byte layout, parsed without reading anything: a header check and one pass that
finds where each type record starts (Documentation/bpf/btf.rst, uapi <linux/btf.h>).

    struct btf_header   magic 0xeB9F, version 1, flags, hdr_len, then type_off/type_len and
                        str_off/str_len, both relative to the end of the header (hdr_len)
    type section        records back to back; record N (counting from 1) is type id N, id 0 is
                        void. Each is a 12-byte struct btf_type (name_off, info, size|type)
                        followed by kind-specific data whose length depends only on kind and vlen
    string section      NUL-terminated names; offset 0 is the empty string

    info:  bit 31 kind_flag | bits 24-28 kind | bits 0-15 vlen
"""

from __future__ import annotations

import enum
import struct
import sys
from array import array
from typing import NamedTuple

from ..fact_errors import KernelFactError

__all__ = ["U32", "Blob", "BtfKind", "parse_blob"]

_MAGIC = 0xEB9F
_VERSION = 1
_HEADER_SIZE = 24  # struct btf_header as of version 1; hdr_len may be larger
# A 32-bit unsigned array typecode: "I" on every Linux ABI, "L" kept as a fallback.
U32 = "I" if array("I").itemsize == 4 else "L"


class BtfKind(enum.IntEnum):
    """BTF_KIND_* from <linux/btf.h>: bits 24-28 of btf_type.info."""

    UNKN = 0
    INT = 1
    PTR = 2
    ARRAY = 3
    STRUCT = 4
    UNION = 5
    ENUM = 6
    FWD = 7
    TYPEDEF = 8
    VOLATILE = 9
    CONST = 10
    RESTRICT = 11
    FUNC = 12  # Linux 5.0
    FUNC_PROTO = 13  # Linux 5.0
    VAR = 14  # Linux 5.2
    DATASEC = 15  # Linux 5.2
    FLOAT = 16  # Linux 5.13
    DECL_TAG = 17  # Linux 5.16
    TYPE_TAG = 18  # Linux 5.17
    ENUM64 = 19  # Linux 6.0


# Record length in 32-bit words, after the 12-byte btf_type: fixed part, and per vlen item.
# INT: u32 encoding; ARRAY: btf_array {type, index_type, nelems}; STRUCT/UNION: btf_member
# {name_off, type, offset}; ENUM: btf_enum {name_off, val}; FUNC_PROTO: btf_param {name_off,
# type}; VAR: u32 linkage; DATASEC: btf_var_secinfo {type, offset, size}; DECL_TAG: s32
# component_idx; ENUM64: btf_enum64 {name_off, val_lo32, val_hi32}. Other kinds have none.
_FIXED_WORDS: dict[int, int] = {
    BtfKind.INT: 1,
    BtfKind.ARRAY: 3,
    BtfKind.VAR: 1,
    BtfKind.DECL_TAG: 1,
}
_ITEM_WORDS: dict[int, int] = {
    BtfKind.STRUCT: 3,
    BtfKind.UNION: 3,
    BtfKind.ENUM: 2,
    BtfKind.FUNC_PROTO: 2,
    BtfKind.DATASEC: 3,
    BtfKind.ENUM64: 3,
}
# Indexed by the 5-bit kind; None for kinds a record cannot have (UNKN, or newer than ENUM64),
# whose length this reader cannot know, so it stops there.
_RECORD_KINDS = frozenset(k.value for k in BtfKind if k != BtfKind.UNKN)
_BASE: tuple[int | None, ...] = tuple(
    3 + _FIXED_WORDS.get(k, 0) if k in _RECORD_KINDS else None for k in range(32)
)
_PER_ITEM: tuple[int | None, ...] = tuple(
    _ITEM_WORDS.get(k, 0) if k in _RECORD_KINDS else None for k in range(32)
)


class Blob(NamedTuple):
    """A validated BTF blob: the type section as host-order words and where each record starts."""

    data: bytes
    words: array[int]  # the type section as 32-bit words, in host byte order
    starts: list[int]  # word index of type id N's record at [N - 1]
    str_start: int  # the string section's bounds in `data`
    str_end: int


def parse_blob(data: bytes) -> Blob:
    """Check a BTF blob's header and sections and find its records; KernelFactError if it is
    truncated or not BTF."""
    data = bytes(data)
    if len(data) < _HEADER_SIZE:
        raise KernelFactError(
            f"BTF blob of {len(data)} bytes is shorter than a btf_header ({_HEADER_SIZE})"
        )
    # The header is in the byte order of the machine that wrote it; the magic tells which.
    (magic,) = struct.unpack_from("<H", data)
    if magic == _MAGIC:
        byteorder = "<"
    elif magic == ((_MAGIC & 0xFF) << 8 | _MAGIC >> 8):
        byteorder = ">"
    else:
        raise KernelFactError(f"not BTF: magic is {data[:2].hex()}, expected eb9f")
    _, version, _flags, hdr_len, type_off, type_len, str_off, str_len = struct.unpack_from(
        byteorder + "HBBIIIII", data
    )
    if version != _VERSION:
        raise KernelFactError(f"unsupported BTF version {version} (this reader knows 1)")
    if hdr_len < _HEADER_SIZE or hdr_len > len(data):
        raise KernelFactError(f"bad BTF hdr_len {hdr_len} for a blob of {len(data)} bytes")
    body = len(data) - hdr_len
    for section, off, length in (("type", type_off, type_len), ("string", str_off, str_len)):
        if off + length > body:
            raise KernelFactError(
                f"BTF {section} section ({length} bytes at offset {off}) runs past the end"
                f" of the blob ({body} bytes after the {hdr_len}-byte header); truncated?"
            )
    if type_off % 4 or type_len % 4:
        raise KernelFactError(
            f"BTF type section is not 4-byte aligned (offset {type_off}, length {type_len})"
        )
    str_start = hdr_len + str_off
    str_end = str_start + str_len
    if str_len == 0 or data[str_start] != 0 or data[str_end - 1] != 0:
        raise KernelFactError(
            "BTF string section must start with the empty string and end with a NUL"
        )
    types_start = hdr_len + type_off
    words: array[int] = array(U32)
    words.frombytes(data[types_start : types_start + type_len])
    if (byteorder == "<") != (sys.byteorder == "little"):
        words.byteswap()
    starts = _record_starts(words)
    return Blob(data, words, starts, str_start, str_end)


class _Steps(dict[int, int]):
    """Record length in words for each btf_type.info value, computed on first sight.

    Types repeat the same few hundred info values, so one dict lookup per record replaces
    the kind and vlen arithmetic in the hot loop.
    """

    def __missing__(self, info: int) -> int:
        kind = info >> 24 & 0x1F
        base, per_item = _BASE[kind], _PER_ITEM[kind]
        if base is None or per_item is None:
            raise _UnknownKind(kind)
        step = base + per_item * (info & 0xFFFF)
        self[info] = step
        return step


class _UnknownKind(Exception):
    def __init__(self, kind: int) -> None:
        super().__init__(kind)
        self.kind = kind


def _record_starts(words: array[int]) -> list[int]:
    """Return the word index where each type record starts, in id order (id 1 first).

    The hot loop of the whole reader (~130k records for vmlinux): it stops on the IndexError
    of reading past the section rather than testing a bound each time, then checks where.
    """
    steps = _Steps()
    starts: list[int] = []
    append = starts.append
    p = 0
    try:
        while True:
            append(p)
            p += steps[words[p + 1]]
    except IndexError:
        starts.pop()
    except _UnknownKind as exc:
        raise KernelFactError(
            f"BTF type id {len(starts)} (byte {4 * starts[-1]} of the type section) has"
            f" unknown kind {exc.kind}; this reader cannot skip it"
        ) from None
    if p != len(words):
        # Either a record's data runs past the end, or the section ends mid-btf_type.
        last = len(starts) if p > len(words) else len(starts) + 1
        start = starts[-1] if p > len(words) else p
        raise KernelFactError(
            f"BTF type id {last} (byte {4 * start} of the type section) runs past the end of"
            f" the {4 * len(words)}-byte type section; truncated?"
        )
    return starts
