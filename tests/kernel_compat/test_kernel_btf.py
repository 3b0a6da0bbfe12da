from __future__ import annotations

import re
import shutil
import struct
import subprocess
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING

import pytest

from kernel_compat import (
    Btf,
    BtfKind,
    FeatureMissing,
    KernelFactError,
    Member,
    load_vmlinux_btf,
    vmlinux_btf_path,
)

if TYPE_CHECKING:
    from conftest import FakeRoot


class BtfWriter:
    """A tiny BTF encoder: add types (ids count from 1), then build() the blob."""

    def __init__(self) -> None:
        self.strings = bytearray(b"\0")
        self.words: list[int] = []
        self.count = 0

    def name(self, text: str) -> int:
        if not text:
            return 0
        offset = len(self.strings)
        self.strings += text.encode() + b"\0"
        return offset

    def add(
        self,
        kind: BtfKind,
        name: str,
        size_or_type: int,
        *extra: int,
        vlen: int = 0,
        kind_flag: bool = False,
    ) -> int:
        info = kind_flag << 31 | kind << 24 | vlen
        self.words += [self.name(name), info, size_or_type, *extra]
        self.count += 1
        return self.count

    def int_(
        self, name: str, size: int, bits: int = 0, offset: int = 0, signed: bool = False
    ) -> int:
        encoding = int(signed) << 24 | offset << 16 | (bits or size * 8)
        return self.add(BtfKind.INT, name, size, encoding)

    def ref(self, kind: BtfKind, target: int, name: str = "") -> int:
        return self.add(kind, name, target)

    def array(self, elem: int, index: int, nelems: int) -> int:
        return self.add(BtfKind.ARRAY, "", 0, elem, index, nelems)

    def struct(
        self,
        name: str,
        size: int,
        members: Sequence[tuple[str, int, int] | tuple[str, int, int, int]],
        union: bool = False,
        kind_flag: bool = False,
    ) -> int:
        """members: (name, type, bit offset[, bitfield size]) each."""
        extra: list[int] = []
        for member_name, member_type, bit_offset, *bits in members:
            offset = (bits[0] << 24 | bit_offset) if kind_flag and bits else bit_offset
            extra += [self.name(member_name), member_type, offset]
        kind = BtfKind.UNION if union else BtfKind.STRUCT
        return self.add(kind, name, size, *extra, vlen=len(members), kind_flag=kind_flag)

    def enum(self, name: str, values: Sequence[tuple[str, int]], signed: bool = False) -> int:
        extra: list[int] = []
        for value_name, value in values:
            extra += [self.name(value_name), value & 0xFFFFFFFF]
        return self.add(BtfKind.ENUM, name, 4, *extra, vlen=len(values), kind_flag=signed)

    def enum64(self, name: str, values: Sequence[tuple[str, int]], signed: bool = False) -> int:
        extra: list[int] = []
        for value_name, value in values:
            value &= (1 << 64) - 1
            extra += [self.name(value_name), value & 0xFFFFFFFF, value >> 32]
        return self.add(BtfKind.ENUM64, name, 8, *extra, vlen=len(values), kind_flag=signed)

    def build(self, byteorder: str = "<", hdr_len: int = 24) -> bytes:
        types = struct.pack(f"{byteorder}{len(self.words)}I", *self.words)
        header = struct.pack(
            f"{byteorder}HBBIIIII", 0xEB9F, 1, 0, hdr_len, 0, len(types), len(types),
            len(self.strings),
        )  # fmt: skip
        return header.ljust(hdr_len, b"\0") + types + bytes(self.strings)


def kernel_like() -> BtfWriter:
    """Types shaped like the kernel's task_struct/pid/pid_namespace, with every kind."""
    w = BtfWriter()
    int_ = w.int_("int", 4, signed=True)  # 1
    uint = w.int_("unsigned int", 4)  # 2
    w.int_("long int", 8, signed=True)  # 3
    # Kinds that carry trailing data, before the structs, so a wrong skip shifts every id after.
    w.enum64("big", [("BIG_LOW", 1), ("BIG_HIGH", 1 << 40), ("BIG_NEG", -2)], signed=True)  # 4
    w.add(BtfKind.DECL_TAG, "user", 2, 0xFFFFFFFF)  # 5: tags type 2 (component_idx -1)
    proto = w.add(BtfKind.FUNC_PROTO, "", int_, 0, int_, w.name("arg"), uint, vlen=2)  # 6
    w.add(BtfKind.FUNC, "do_thing", proto, vlen=1)  # 7 (vlen holds the linkage)
    var = w.add(BtfKind.VAR, "counter", int_, 1)  # 8
    w.add(BtfKind.DATASEC, ".data", 4, var, 0, 4, vlen=1)  # 9
    w.add(BtfKind.FLOAT, "double", 8)  # 10
    w.add(BtfKind.FWD, "later", 0, kind_flag=True)  # 11: union later;
    w.enum("color", [("RED", 0), ("MINUS", -1)], signed=True)  # 12
    w.enum("flags", [("HIGH", 0x80000000)])  # 13
    pid_t = w.ref(BtfKind.TYPEDEF, int_, "pid_t")  # 14
    u32 = w.ref(BtfKind.TYPEDEF, uint, "u32")  # 15
    cv_u32 = w.ref(BtfKind.CONST, w.ref(BtfKind.VOLATILE, u32))  # 17 -> 16
    tagged = w.ref(BtfKind.TYPE_TAG, u32, "percpu")  # 18

    # struct ns_common { u32 pad; unsigned int inum; };
    # struct pid_namespace { int level; struct ns_common ns; };
    ns_common = w.struct("ns_common", 8, [("pad", u32, 0), ("inum", uint, 32)])
    pid_ns = w.struct("pid_namespace", 12, [("level", int_, 0), ("ns", ns_common, 32)])
    pid_ns_ptr = w.ref(BtfKind.PTR, pid_ns)
    # struct upid { int nr; struct pid_namespace *ns; };  struct pid { u32 count; upid numbers[]; }
    upid = w.struct("upid", 16, [("nr", int_, 0), ("ns", pid_ns_ptr, 64)])
    numbers = w.array(upid, int_, 0)
    pid = w.struct("pid", 8, [("count", u32, 0), ("numbers", numbers, 64)])
    pid_ptr = w.ref(BtfKind.PTR, pid)
    comm = w.array(w.int_("char", 1), int_, 16)
    matrix = w.array(w.array(uint, int_, 3), int_, 2)
    # union { struct { pid_t inner_a; const volatile u32 inner_b; }; long int alt; }
    anon_struct = w.struct("", 8, [("inner_a", pid_t, 0), ("inner_b", cv_u32, 32)])
    anon_union = w.struct("", 8, [("", anon_struct, 0), ("alt", 3, 0)], union=True)
    task_ptr = w.ref(BtfKind.PTR, w.count + 2)  # points at the struct added next
    task = w.struct(
        "task_struct",
        64,
        [
            ("state", tagged, 0),
            ("tgid", pid_t, 32),
            ("real_parent", task_ptr, 64),
            ("", anon_union, 128),
            ("thread_pid", pid_ptr, 192),
            ("comm", comm, 256),
            ("matrix", matrix, 384),
        ],
    )
    assert task == task_ptr + 1
    # Bitfields, both encodings: kind_flag (size << 24 | offset) and an INT with fewer bits.
    w.struct("flags_kf", 4, [("a", uint, 0, 1), ("b", uint, 1, 3), ("c", uint, 8)], kind_flag=True)
    three_bits = w.int_("unsigned int", 4, bits=3)
    w.struct("flags_int", 4, [("lo", uint, 0), ("mid", three_bits, 4)])
    w.ref(BtfKind.TYPEDEF, task, "task_struct")  # a typedef sharing the struct's name
    w.ref(BtfKind.TYPEDEF, proto, "btf_trace_sys_exit")
    w.ref(BtfKind.PTR, 999, "")  # refers to a type that does not exist
    w.struct("broken", 8, [("dangling", w.count, 0)])
    return w


@pytest.fixture(scope="module")
def btf() -> Btf:
    return Btf.from_bytes(kernel_like().build())


def test_member_in_nested_struct(btf: Btf) -> None:
    assert btf.field("pid_namespace", "ns.inum") == Member(
        name="ns.inum",
        offset=8,
        size=4,
        type_name="unsigned int",
        is_pointer=False,
        bitfield=False,
        bit_offset=64,
        bit_size=0,
        element_size=0,
        element_count=0,
        type_id=2,
    )
    assert btf.field("pid_namespace", "ns", "inum") == btf.field("pid_namespace", "ns.inum")
    assert btf.member_offset("pid_namespace", "ns") == 4
    assert btf.field("pid_namespace", "ns").type_name == "struct ns_common"


def test_pointers_and_typedefs(btf: Btf) -> None:
    parent = btf.field("task_struct", "real_parent")
    assert (parent.offset, parent.size, parent.is_pointer) == (8, 8, True)
    assert parent.type_name == "struct task_struct *"
    tgid = btf.field("task_struct", "tgid")
    assert (tgid.offset, tgid.size, tgid.is_pointer, tgid.type_name) == (4, 4, False, "pid_t")
    assert btf.field("upid", "ns").type_name == "struct pid_namespace *"


def test_anonymous_union_and_struct_are_searched(btf: Btf) -> None:
    # inner_b sits in an anonymous struct (offset 0) in an anonymous union (offset 16).
    inner_b = btf.field("task_struct", "inner_b")
    assert (inner_b.offset, inner_b.size, inner_b.type_name) == (20, 4, "const volatile u32")
    assert btf.member_offset("task_struct", "inner_a") == 16
    assert btf.member_offset("task_struct", "alt") == 16
    assert btf.field("task_struct", "alt").size == 8


def test_qualifier_and_type_tag_chains_resolve_sizes(btf: Btf) -> None:
    state = btf.field("task_struct", "state")
    assert (state.size, state.type_name) == (4, "u32")
    assert btf.type_size(17) == 4  # const -> volatile -> typedef -> int
    assert btf.type_name(17) == "const volatile u32"


def test_arrays(btf: Btf) -> None:
    numbers = btf.field("pid", "numbers")
    assert (numbers.offset, numbers.size, numbers.type_name) == (8, 0, "struct upid[]")
    assert (numbers.element_size, numbers.element_count) == (16, 0)
    assert btf.member_offset("upid", "nr") == 0
    assert btf.field("pid", "numbers[1].nr").offset == 8 + 16
    assert btf.field("pid", "numbers[2]", "ns").offset == 8 + 32 + 8
    comm = btf.field("task_struct", "comm")
    assert (comm.size, comm.element_size, comm.element_count, comm.type_name) == (
        16,
        1,
        16,
        "char[16]",
    )
    matrix = btf.field("task_struct", "matrix")
    assert (matrix.size, matrix.element_size, matrix.type_name) == (24, 12, "unsigned int[2][3]")


def test_bitfields_with_kind_flag(btf: Btf) -> None:
    b = btf.field("flags_kf", "b")
    assert (b.bitfield, b.bit_offset, b.bit_size, b.offset, b.size) == (True, 1, 3, 0, 4)
    c = btf.field("flags_kf", "c")
    assert (c.bitfield, c.offset) == (False, 1) and c.bit_offset == 8
    with pytest.raises(KernelFactError, match=r"flags_kf\.a is a 1-bit bitfield at bit 0"):
        btf.member_offset("flags_kf", "a")


def test_bitfields_as_int_encoding(btf: Btf) -> None:
    mid = btf.field("flags_int", "mid")
    assert (mid.bitfield, mid.bit_offset, mid.bit_size) == (True, 4, 3)
    assert btf.field("flags_int", "lo").bitfield is False


def test_missing_member_names_struct_and_member(btf: Btf) -> None:
    with pytest.raises(
        FeatureMissing, match=r"^struct task_struct has no member 'pids' in this kernel$"
    ):
        btf.field("task_struct", "pids")
    with pytest.raises(
        FeatureMissing, match=r"struct pid_namespace\.ns \(struct ns_common\) has no member 'x'"
    ):
        btf.field("pid_namespace", "ns.x")
    with pytest.raises(FeatureMissing, match="BTF has no struct or union nosuch"):
        btf.field("nosuch", "x")


def test_path_does_not_cross_pointers(btf: Btf) -> None:
    with pytest.raises(FeatureMissing, match="a path cannot cross a pointer"):
        btf.field("task_struct", "real_parent.tgid")
    with pytest.raises(FeatureMissing, match=r"task_struct\.tgid is 'pid_t'.* no member 'x'"):
        btf.field("task_struct", "tgid.x")
    with pytest.raises(FeatureMissing, match="not an array"):
        btf.field("task_struct", "tgid[1]")
    with pytest.raises(ValueError, match="invalid member name"):
        btf.field("task_struct", "tgid..x")
    with pytest.raises(ValueError, match="needs a member name"):
        btf.field("task_struct")


def test_type_id_by_name_and_kind(btf: Btf) -> None:
    assert btf.type_id("btf_trace_sys_exit", kind="typedef") == len(btf) - 2
    struct_id = btf.type_id("task_struct", kind="struct")
    typedef_id = btf.type_id("task_struct", kind=BtfKind.TYPEDEF)
    assert struct_id < typedef_id
    assert btf.type_id("task_struct") == struct_id  # without kind, the lowest id
    assert btf.field("struct task_struct", "tgid").offset == 4
    assert btf.type_id("counter", kind="var") == 8
    assert btf.type_id(".data", kind="datasec") == 9
    assert btf.type_id("user", kind="decl_tag") == 5
    assert btf.type_id("double", kind="float") == 10
    assert btf.type_name(11) == "union later"
    assert btf.type_name(btf.type_id("do_thing", kind="func")) == "do_thing"
    with pytest.raises(FeatureMissing, match="BTF has no union task_struct"):
        btf.type_id("task_struct", kind="union")
    with pytest.raises(FeatureMissing, match="BTF has no 'nothing'"):
        btf.type_id("nothing")
    with pytest.raises(FeatureMissing):
        btf.type_id("")
    with pytest.raises(ValueError, match="unknown BTF kind 'klass'"):
        btf.type_id("task_struct", kind="klass")


def test_enum_values(btf: Btf) -> None:
    assert btf.enum_value("big", "BIG_HIGH") == 1 << 40
    assert btf.enum_value("big", "BIG_NEG") == -2
    assert btf.enum_value("color", "MINUS") == -1
    assert btf.enum_value("flags", "HIGH") == 0x80000000
    with pytest.raises(FeatureMissing, match="enum color has no enumerator 'BLUE'"):
        btf.enum_value("color", "BLUE")
    with pytest.raises(FeatureMissing, match="BTF has no enum pid"):
        btf.enum_value("pid", "X")


def test_dangling_type_reference_is_a_kernel_fact_error(btf: Btf) -> None:
    with pytest.raises(KernelFactError, match="type id 999, but only ids 1-"):
        btf.field("broken", "dangling")


def test_big_endian_blob_and_longer_header() -> None:
    for blob in (kernel_like().build(">"), kernel_like().build(hdr_len=32)):
        btf = Btf.from_bytes(blob)
        assert btf.member_offset("pid", "numbers[1].nr") == 24
        assert btf.field("task_struct", "inner_b").offset == 20
        assert btf.enum_value("big", "BIG_NEG") == -2


def test_duplicate_names_in_string_section() -> None:
    # Strings need not be deduplicated: each type may point at its own copy of a name.
    w = BtfWriter()
    w.int_("int", 4)
    w.struct("twin", 4, [("a", 1, 0)])
    w.ref(BtfKind.TYPEDEF, 2, "twin")
    btf = Btf.from_bytes(w.build())
    assert btf.type_id("twin", kind="struct") == 2
    assert btf.type_id("twin", kind="typedef") == 3


def test_every_truncation_is_a_kernel_fact_error() -> None:
    blob = kernel_like().build()
    for length in range(len(blob)):
        with pytest.raises(KernelFactError):
            Btf.from_bytes(blob[:length])


def _with_header(blob: bytes, **fields: int) -> bytes:
    names = ("magic", "version", "flags", "hdr_len", "type_off", "type_len", "str_off", "str_len")
    values = dict(zip(names, struct.unpack_from("<HBBIIIII", blob)))
    values.update(fields)
    return struct.pack("<HBBIIIII", *values.values()) + blob[24:]


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        ({"magic": 0x1234}, "not BTF: magic is 3412, expected eb9f"),
        ({"version": 2}, "unsupported BTF version 2"),
        ({"hdr_len": 8}, "bad BTF hdr_len 8"),
        ({"hdr_len": 1 << 30}, "bad BTF hdr_len"),
        ({"str_len": 1 << 20}, r"string section \(1048576 bytes at offset \d+\) runs past"),
        ({"type_len": 6}, "not 4-byte aligned"),
        ({"type_len": 8}, r"type id 1 \(byte 0 of the type section\) runs past the end"),
        ({"type_len": 28}, r"type id 2 \(byte 16 of the type section\) runs past the end"),
        ({"type_len": 20}, r"type id 2 \(byte 16 of the type section\) runs past the end"),
        ({"str_len": 0}, "string section must start with the empty string and end with a NUL"),
    ],
)
def test_malformed_header(change: dict[str, int], problem: str) -> None:
    with pytest.raises(KernelFactError, match=problem):
        Btf.from_bytes(_with_header(kernel_like().build(), **change))


def test_string_section_must_be_nul_delimited() -> None:
    blob = kernel_like().build()
    str_off, str_len = struct.unpack_from("<II", blob, 16)
    for change in ({"str_off": str_off + 1, "str_len": str_len - 1}, {"str_len": str_len - 1}):
        with pytest.raises(KernelFactError, match="must start with the empty string and end"):
            Btf.from_bytes(_with_header(blob, **change))


def test_unknown_kind_cannot_be_skipped() -> None:
    w = BtfWriter()
    w.int_("int", 4)
    w.add(BtfKind.INT, "", 0)
    for kind in (31, 20, 0):
        w.words[-2] = kind << 24  # the second record's info
        with pytest.raises(KernelFactError, match=rf"type id 2 .* has unknown kind {kind};"):
            Btf.from_bytes(w.build())


def test_name_offset_outside_string_section() -> None:
    w = BtfWriter()
    w.int_("int", 4)
    w.struct("s", 4, [("a", 1, 0)])
    w.words[-3] = 10_000  # the member's name_off
    btf = Btf.from_bytes(w.build())
    with pytest.raises(KernelFactError, match="name offset 10000 lies outside"):
        btf.field("s", "a")


def test_empty_type_section() -> None:
    btf = Btf.from_bytes(BtfWriter().build())
    assert len(btf) == 0
    with pytest.raises(FeatureMissing):
        btf.type_id("int")


def test_load_vmlinux_btf_from_root(fake_root: FakeRoot) -> None:
    path = fake_root.write("/sys/kernel/btf/vmlinux", "")
    path.write_bytes(kernel_like().build())
    assert load_vmlinux_btf(fake_root.path).member_offset("task_struct", "real_parent") == 8


def test_load_vmlinux_btf_garbage_names_the_file(fake_root: FakeRoot) -> None:
    path = fake_root.write("/sys/kernel/btf/vmlinux", "not btf at all, but long enough")
    with pytest.raises(KernelFactError, match=f"cannot parse {re.escape(str(path))}: not BTF"):
        load_vmlinux_btf(fake_root.path)


def test_load_vmlinux_btf_missing(fake_root: FakeRoot) -> None:
    with pytest.raises(FeatureMissing, match="btf/vmlinux does not exist"):
        load_vmlinux_btf(fake_root.path)


def test_vmlinux_btf_path_from_root(fake_root: FakeRoot) -> None:
    path = fake_root.write("/sys/kernel/btf/vmlinux", "x")
    assert vmlinux_btf_path(fake_root.path) == path


def test_vmlinux_btf_path_missing(fake_root: FakeRoot) -> None:
    with pytest.raises(FeatureMissing, match="btf/vmlinux does not exist"):
        vmlinux_btf_path(fake_root.path)


# The running kernel's BTF.


@pytest.fixture(scope="module")
def vmlinux() -> Iterator[Btf]:
    try:
        yield load_vmlinux_btf()
    except FeatureMissing as exc:
        pytest.skip(str(exc))


def test_real_task_struct(vmlinux: Btf) -> None:
    parent = vmlinux.field("task_struct", "real_parent")
    assert (parent.is_pointer, parent.size, parent.type_name) == (True, 8, "struct task_struct *")
    tgid = vmlinux.field("task_struct", "tgid")
    assert (tgid.size, tgid.is_pointer, tgid.bitfield) == (4, False, False)
    assert vmlinux.field("task_struct", "nsproxy").is_pointer
    comm = vmlinux.field("task_struct", "comm")
    assert (comm.size, comm.element_size, comm.element_count) == (16, 1, 16)


def test_real_namespaces_and_pids(vmlinux: Btf) -> None:
    assert vmlinux.field("nsproxy", "pid_ns_for_children").type_name == "struct pid_namespace *"
    inum = vmlinux.field("pid_namespace", "ns.inum")
    assert (inum.size, inum.is_pointer) == (4, False)
    assert inum == vmlinux.field("pid_namespace", "ns", "inum")
    numbers = vmlinux.field("pid", "numbers")
    upid_size = vmlinux.type_size(vmlinux.type_id("upid", kind="struct"))
    assert numbers.element_size == upid_size
    assert vmlinux.field("upid", "nr").size == 4
    assert vmlinux.field("pid", "numbers[1].nr").offset == numbers.offset + upid_size


def test_real_tp_btf_typedef(vmlinux: Btf) -> None:
    type_id = vmlinux.type_id("btf_trace_sys_exit", kind="typedef")
    assert vmlinux.type_name(type_id) == "btf_trace_sys_exit"
    assert vmlinux.type_size(type_id) == 8  # a pointer to the probe's prototype


_RAW_TYPE = re.compile(r"\[(\d+)\] (\w+) '([^']*)'")
_RAW_MEMBER = re.compile(r"\t'(\w+)' type_id=\d+ bits_offset=(\d+)")


def test_real_btf_matches_bpftool() -> None:
    """Cross-check every type's kind and name, and task_struct's offsets, with bpftool."""
    bpftool = shutil.which("bpftool")
    if bpftool is None:
        pytest.skip("bpftool is not installed")
    try:
        path = vmlinux_btf_path()
    except FeatureMissing as exc:
        pytest.skip(str(exc))
    dump = subprocess.run(
        [bpftool, "btf", "dump", "file", str(path), "format", "raw"],
        capture_output=True,
        text=True,
        check=False,
    )
    if dump.returncode != 0:
        pytest.skip(f"bpftool cannot dump {path}: {dump.stderr.strip()}")
    btf = load_vmlinux_btf()
    types = _RAW_TYPE.findall(dump.stdout)
    assert len(types) == len(btf)
    for type_id, kind, name in types:
        assert btf._kind_of(int(type_id)).name == kind, type_id
        own_name = btf._string(btf._words[btf._starts[int(type_id) - 1]])
        assert (own_name or "(anon)") == name, type_id
    task_struct = dump.stdout.split(f"[{btf.type_id('task_struct', kind='struct')}] STRUCT")[1]
    members = _RAW_MEMBER.findall(task_struct.split("\n[", 1)[0])
    assert len(members) > 50
    for name, bits in members:
        assert btf.field("task_struct", name).bit_offset == int(bits), name
