"""The kernel's BTF types by name, and member layouts decoded on demand.

rawtrace reads vmlinux BTF (~5 MB, ~130k types) at start-up, so `Btf.from_bytes` makes one
pass that records only where each record starts (blob.py), and decodes a type when a lookup
reaches it. A name is found by searching the string section for it, then the types' name
offsets (gathered on the first lookup) for its offset.

This stands in for CO-RE: `Btf.field("task_struct", "real_parent")` says where a member lies
in this kernel's layout, so the program builders can load it with the right offset and size.
"""

from __future__ import annotations

import re
from array import array
from dataclasses import dataclass

from ..fact_errors import FeatureMissing, KernelFactError
from .blob import U32, BtfKind, parse_blob

__all__ = ["Btf", "Member"]

_MAX_DEPTH = 64  # typedef/modifier chains and nested anonymous members, against cycles
_PATH_PART = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)(?:\[(\d+)\])?")

# Kinds that only qualify another type; sizes and members are those of the type they point at.
_MODIFIERS = frozenset(
    {BtfKind.TYPEDEF, BtfKind.VOLATILE, BtfKind.CONST, BtfKind.RESTRICT, BtfKind.TYPE_TAG}
)
_COMPOSITES = frozenset({BtfKind.STRUCT, BtfKind.UNION})
_SIZED = frozenset(
    {
        BtfKind.INT,
        BtfKind.ENUM,
        BtfKind.STRUCT,
        BtfKind.UNION,
        BtfKind.DATASEC,
        BtfKind.FLOAT,
        BtfKind.ENUM64,
    }
)


@dataclass(frozen=True)
class Member:
    """Where a struct/union member lies in this kernel, and what it holds.

    `offset` is in bytes from the start of the outermost struct the path began at (for a
    bitfield: the byte holding its first bit; use `bit_offset` and `bit_size`). `size` is the
    size in bytes of the member's type after typedefs and qualifiers (the whole array for an
    array; the storage type for a bitfield). For an array, `element_size` and `element_count`
    describe one element and how many the type declares (0 for a flexible array member `[]`);
    both are 0 for anything else. `type_name` is the declared type in C spelling
    ("struct task_struct *", "pid_t", "struct upid[1]"); `type_id` its BTF id.
    """

    name: str
    offset: int
    size: int
    type_name: str
    is_pointer: bool
    bitfield: bool
    bit_offset: int
    bit_size: int
    element_size: int
    element_count: int
    type_id: int


class Btf:
    """A parsed BTF blob: type ids by name, and member layouts decoded on demand."""

    def __init__(
        self,
        data: bytes,
        words: array[int],
        starts: list[int],
        str_start: int,
        str_end: int,
    ) -> None:
        # Use Btf.from_bytes() or load_vmlinux_btf(); this only stores what they validated.
        self._data = data
        self._words = words  # the type section as 32-bit words, in host byte order
        self._starts = starts  # word index of type id N's record at [N - 1]
        self._str_start = str_start
        self._str_end = str_end
        self._ids_by_name: dict[str, tuple[int, ...]] = {}
        self._pointer_size: int | None = None
        self._names: bytes | None = None

    @classmethod
    def from_bytes(cls, data: bytes) -> Btf:
        """Parse a BTF blob; KernelFactError if it is truncated or not BTF."""
        return cls(*parse_blob(data))

    def __len__(self) -> int:
        """Return the number of types, not counting void (id 0)."""
        return len(self._starts)

    # Lookups by name.

    def type_id(self, name: str, kind: BtfKind | str | None = None) -> int:
        """Return the id of the first type called `name` (of `kind`, e.g. "typedef").

        `kind` is a BtfKind or its lower-case name ("struct", "func", "enum64"); without it
        the lowest id of any kind wins. FeatureMissing if there is none.
        """
        wanted = _kind(kind)
        for type_id in self._ids_named(name):
            if wanted is None or self._kind_of(type_id) == wanted:
                return type_id
        what = f"{wanted.name.lower()} {name}" if wanted is not None else repr(name)
        raise FeatureMissing(f"BTF has no {what}")

    def type_size(self, type_id: int) -> int:
        """Return the size in bytes of type `type_id`, through typedefs and qualifiers.

        Pointers have the kernel's pointer size; void, functions and forward declarations 0.
        """
        return self._size(type_id)

    def type_name(self, type_id: int) -> str:
        """Return type `type_id` spelled as C would declare it ("struct task_struct *")."""
        return self._spell(type_id, 0)

    def field(self, struct_name: str, *path: str) -> Member:
        """Return the member reached by `path` from struct (or union) `struct_name`.

        `path` is one or more member names; each may be dotted ("ns.inum") and may index an
        array ("numbers[1].nr"). The walk goes through embedded structs and unions, never
        through pointers, and finds members of anonymous structs and unions as C does.
        `struct_name` may say "struct x" or "union x"; a bare name tries struct, then union.
        FeatureMissing names the struct and member when this kernel lacks one.
        """
        parts = [part for item in path for part in item.split(".")]
        if not parts:
            raise ValueError("field() needs a member name")
        type_id = self._composite_id(struct_name)
        where = self._spell(type_id, 0)  # "struct pid", then "struct pid.numbers[1]", ...
        bit_offset = 0
        bit_size = 0
        for i, part in enumerate(parts):
            match = _PATH_PART.fullmatch(part)
            if match is None:
                raise ValueError(f"invalid member name {part!r} in {'.'.join(parts)!r}")
            name, index = match.group(1), match.group(2)
            if i:
                where = f"{where}.{parts[i - 1]}"
            container = self._resolve(type_id)
            kind = self._kind_of(container)
            if kind not in _COMPOSITES:
                raise FeatureMissing(
                    f"{where} is {self._spell(type_id, 0)!r}, not an embedded struct or union,"
                    f" so it has no member {name!r}"
                    + (" (a path cannot cross a pointer)" if kind == BtfKind.PTR else "")
                )
            found = self._find_member(container, name, 0)
            if found is None:
                inside = f" ({self._spell(container, 0)})" if i else ""
                raise FeatureMissing(f"{where}{inside} has no member {name!r} in this kernel")
            type_id, member_bits, bit_size = found
            bit_offset += member_bits
            if index is not None:
                array_id = self._resolve(type_id)
                if self._kind_of(array_id) != BtfKind.ARRAY:
                    raise FeatureMissing(
                        f"{where}.{name} is {self._spell(type_id, 0)!r}, not an array"
                    )
                elem, _ = self._array_info(array_id)
                type_id = elem
                bit_offset += int(index) * self._size(elem) * 8
        resolved = self._resolve(type_id)
        kind = self._kind_of(resolved)
        element_size = element_count = 0
        if kind == BtfKind.ARRAY:
            elem, element_count = self._array_info(resolved)
            element_size = self._size(elem)
        return Member(
            name=".".join(parts),
            offset=bit_offset // 8,
            size=self._size(type_id),
            type_name=self._spell(type_id, 0),
            is_pointer=kind == BtfKind.PTR,
            bitfield=bit_size != 0,
            bit_offset=bit_offset,
            bit_size=bit_size,
            element_size=element_size,
            element_count=element_count,
            type_id=type_id,
        )

    def member_offset(self, struct_name: str, *path: str) -> int:
        """Return the byte offset of the member at `path` in `struct_name` (see field())."""
        member = self.field(struct_name, *path)
        if member.bitfield:
            raise KernelFactError(
                f"{struct_name}.{member.name} is a {member.bit_size}-bit bitfield at bit"
                f" {member.bit_offset}; it has no byte offset (use field())"
            )
        return member.offset

    def enum_value(self, enum_name: str, enumerator: str) -> int:
        """Return the value of `enumerator` in enum `enum_name` (ENUM or ENUM64)."""
        candidates = [
            type_id
            for type_id in self._ids_named(enum_name)
            if self._kind_of(type_id) in (BtfKind.ENUM, BtfKind.ENUM64)
        ]
        if not candidates:
            raise FeatureMissing(f"BTF has no enum {enum_name}")
        w = self._words
        for type_id in candidates:
            p = self._starts[type_id - 1]
            info = w[p + 1]
            signed = bool(info >> 31)
            if self._kind_of(type_id) == BtfKind.ENUM:
                for q in range(p + 3, p + 3 + 2 * (info & 0xFFFF), 2):
                    if self._string(w[q]) == enumerator:
                        value = w[q + 1]
                        return value - (1 << 32) if signed and value >> 31 else value
            else:
                for q in range(p + 3, p + 3 + 3 * (info & 0xFFFF), 3):
                    if self._string(w[q]) == enumerator:
                        value = w[q + 2] << 32 | w[q + 1]
                        return value - (1 << 64) if signed and value >> 63 else value
        raise FeatureMissing(f"enum {enum_name} has no enumerator {enumerator!r} in this kernel")

    # Decoding, on demand.

    def _ids_named(self, name: str) -> tuple[int, ...]:
        """Return the ids of all types whose name is `name`, in id order."""
        cached = self._ids_by_name.get(name)
        if cached is not None:
            return cached
        ids: list[int] = []
        encoded = name.encode()
        if encoded and b"\0" not in encoded:
            data, names = self._data, self._name_offsets()
            # Every name but the first (empty) one follows the previous name's NUL.
            needle = b"\0" + encoded + b"\0"
            pos = data.find(needle, self._str_start, self._str_end)
            while pos >= 0:
                # A name may be shared by several types (a struct and a func, say).
                name_off = array(U32, [pos + 1 - self._str_start]).tobytes()
                hit = names.find(name_off)
                while hit >= 0:
                    if hit % 4 == 0:
                        ids.append(hit // 4 + 1)
                    hit = names.find(name_off, hit + 1)
                pos = data.find(needle, pos + len(needle) - 1, self._str_end)
        result = tuple(sorted(ids))
        self._ids_by_name[name] = result
        return result

    def _name_offsets(self) -> bytes:
        """Return each type's name_off as host-order u32s, in id order (built once, lazily).

        Bytes rather than a list so that bytes.find() scans them in C: ~1.5 ms for all of
        vmlinux's names, where a dict of them would cost ~30 ms to build.
        """
        if self._names is None:
            w = self._words
            self._names = array(U32, [w[p] for p in self._starts]).tobytes()
        return self._names

    def _composite_id(self, struct_name: str) -> int:
        keyword, _, bare = struct_name.partition(" ")
        if bare and keyword in ("struct", "union"):
            return self.type_id(bare.strip(), keyword)
        for type_id in self._ids_named(struct_name):
            if self._kind_of(type_id) == BtfKind.STRUCT:
                return type_id
        for type_id in self._ids_named(struct_name):
            if self._kind_of(type_id) == BtfKind.UNION:
                return type_id
        raise FeatureMissing(f"BTF has no struct or union {struct_name}")

    def _record(self, type_id: int) -> int:
        """Return the word index of type `type_id`'s record; KernelFactError if out of range."""
        if not 0 < type_id <= len(self._starts):
            raise KernelFactError(
                f"BTF refers to type id {type_id}, but only ids 1-{len(self._starts)} exist"
            )
        return self._starts[type_id - 1]

    def _kind_of(self, type_id: int) -> BtfKind:
        if type_id == 0:
            return BtfKind.UNKN  # void
        return BtfKind(self._words[self._record(type_id) + 1] >> 24 & 0x1F)

    def _string(self, offset: int) -> str:
        start = self._str_start + offset
        end = self._data.find(b"\0", start, self._str_end) if start < self._str_end else -1
        if end < 0:
            raise KernelFactError(
                f"BTF name offset {offset} lies outside the string section"
                f" ({self._str_end - self._str_start} bytes)"
            )
        return self._data[start:end].decode("utf-8", "replace")

    def _resolve(self, type_id: int) -> int:
        """Follow typedefs and qualifiers to the type they stand for."""
        for _ in range(_MAX_DEPTH):
            if type_id == 0 or self._kind_of(type_id) not in _MODIFIERS:
                return type_id
            type_id = self._words[self._record(type_id) + 2]
        raise KernelFactError(f"BTF typedef/qualifier chain at type id {type_id} is too long")

    def _array_info(self, type_id: int) -> tuple[int, int]:
        """Return (element type id, nelems) of ARRAY type `type_id`."""
        p = self._record(type_id)
        return self._words[p + 3], self._words[p + 5]

    def _size(self, type_id: int) -> int:
        resolved = self._resolve(type_id)
        kind = self._kind_of(resolved)
        if kind in _SIZED:
            return self._words[self._record(resolved) + 2]
        if kind == BtfKind.PTR:
            return self._ptr_size()
        if kind == BtfKind.ARRAY:
            elem, count = self._array_info(resolved)
            for _ in range(_MAX_DEPTH):
                elem = self._resolve(elem)
                if self._kind_of(elem) != BtfKind.ARRAY:
                    return count * self._size(elem)
                inner, inner_count = self._array_info(elem)
                elem, count = inner, count * inner_count
            raise KernelFactError(f"BTF array type id {resolved} nests too deeply")
        return 0  # void, FWD, FUNC, FUNC_PROTO, VAR, DECL_TAG: no storage size

    def _ptr_size(self) -> int:
        # Like libbpf's btf__pointer_size(): a pointer is as wide as the kernel's long.
        if self._pointer_size is None:
            self._pointer_size = 8
            for name in ("long int", "long unsigned int"):
                for type_id in self._ids_named(name):
                    if self._kind_of(type_id) == BtfKind.INT:
                        self._pointer_size = self._words[self._record(type_id) + 2]
                        return self._pointer_size
        return self._pointer_size

    def _find_member(self, container: int, name: str, depth: int) -> tuple[int, int, int] | None:
        """Find `name` in struct/union `container`, looking into anonymous members.

        Return (type id, bit offset from the container, bitfield size or 0), or None.
        """
        if depth > _MAX_DEPTH:
            raise KernelFactError(f"BTF anonymous members of type id {container} nest too deeply")
        w = self._words
        p = self._record(container)
        info = w[p + 1]
        kind_flag = info >> 31
        anonymous: list[tuple[int, int]] = []
        for q in range(p + 3, p + 3 + 3 * (info & 0xFFFF), 3):
            member_name, member_type, offset = self._string(w[q]), w[q + 1], w[q + 2]
            # kind_flag: offset holds bitfield_size << 24 | bit_offset (size 0: not a bitfield).
            bits, bit_offset = (offset >> 24, offset & 0xFFFFFF) if kind_flag else (0, offset)
            if not member_name:
                anonymous.append((member_type, bit_offset))
            elif member_name == name:
                if not kind_flag:
                    bits, bit_offset = self._int_bitfield(member_type, bit_offset)
                return member_type, bit_offset, bits
        for member_type, bit_offset in anonymous:
            inner = self._resolve(member_type)
            if self._kind_of(inner) in _COMPOSITES:
                found = self._find_member(inner, name, depth + 1)
                if found is not None:
                    return found[0], bit_offset + found[1], found[2]
        return None

    def _int_bitfield(self, member_type: int, bit_offset: int) -> tuple[int, int]:
        """Without kind_flag, a bitfield is an INT whose bits or bit offset say so."""
        resolved = self._resolve(member_type)
        if self._kind_of(resolved) != BtfKind.INT:
            return 0, bit_offset
        p = self._record(resolved)
        encoding = self._words[p + 3]
        bits, int_offset = encoding & 0xFF, encoding >> 16 & 0xFF
        if int_offset or bits != self._words[p + 2] * 8 or bit_offset % 8:
            return bits, bit_offset + int_offset
        return 0, bit_offset

    def _spell(self, type_id: int, depth: int) -> str:
        if depth > _MAX_DEPTH:
            return "..."
        if type_id == 0:
            return "void"
        kind = self._kind_of(type_id)
        p = self._record(type_id)
        name = self._string(self._words[p])
        target = self._words[p + 2]
        if kind in (BtfKind.STRUCT, BtfKind.UNION, BtfKind.ENUM, BtfKind.ENUM64, BtfKind.FWD):
            if kind == BtfKind.FWD:
                keyword = "union" if self._words[p + 1] >> 31 else "struct"
            else:
                keyword = "enum" if kind == BtfKind.ENUM64 else kind.name.lower()
            return f"{keyword} {name}" if name else f"{keyword} {{...}}"
        if kind == BtfKind.PTR:
            if self._kind_of(target) == BtfKind.FUNC_PROTO:
                return self._spell(target, depth + 1).replace(" (", " (*)(", 1)
            inner = self._spell(target, depth + 1)
            return inner + ("*" if inner.endswith("*") else " *")
        if kind in (BtfKind.CONST, BtfKind.VOLATILE, BtfKind.RESTRICT):
            inner = self._spell(target, depth + 1)
            qualifier = kind.name.lower()
            return f"{inner} {qualifier}" if inner.endswith("*") else f"{qualifier} {inner}"
        if kind == BtfKind.TYPE_TAG:
            return self._spell(target, depth + 1)
        if kind == BtfKind.ARRAY:
            elem, count = self._array_info(type_id)
            inner = self._spell(elem, depth + 1)
            dims = inner.find("[")
            dim = f"[{count}]" if count else "[]"
            return inner[:dims] + dim + inner[dims:] if dims >= 0 else inner + dim
        if kind == BtfKind.FUNC_PROTO:
            return f"{self._spell(target, depth + 1)} (...)"
        return name or kind.name.lower()


def _kind(kind: BtfKind | str | None) -> BtfKind | None:
    if kind is None or isinstance(kind, BtfKind):
        return kind
    try:
        return BtfKind[kind.upper()]
    except KeyError:
        known = ", ".join(k.name.lower() for k in BtfKind if k != BtfKind.UNKN)
        raise ValueError(f"unknown BTF kind {kind!r} (known: {known})") from None
