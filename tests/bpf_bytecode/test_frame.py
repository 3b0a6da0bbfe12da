"""Stack frames, the assembler's slot check, scoped labels, the map macros, and jump range."""

from __future__ import annotations

import pytest

from bpf_bytecode import R0, R1, R2, R7, R10, AssemblyError, Item, assemble, decode, disassemble
from bpf_bytecode.asm import exit_, ja, jeq_imm, label, ldxw, mov64_imm, stack_addr, stw, stxdw
from bpf_bytecode.fragments import BPF_ANY, map_delete, map_lookup, map_update, scoped
from bpf_bytecode.frame import Frame, FrameError, Slot


def _frame() -> tuple[Frame, Slot, Slot, Slot]:
    frame = Frame("t")
    return frame, frame.slot("key", 8), frame.slot("zero", 4), frame.slot("rec", 24)


def test_slots_go_down_from_r10_aligned_to_their_size() -> None:
    frame, key, zero, rec = _frame()
    small = frame.slot("byte", 1)
    half = frame.slot("half", 2)
    assert (key.off, zero.off, rec.off, small.off, half.off) == (-8, -12, -40, -41, -44)
    assert frame.size == 44
    assert key.name == "t.key" and rec.end == -16


def test_a_frame_past_512_bytes_is_refused() -> None:
    frame = Frame("big")
    frame.slot("most", 504)
    frame.slot("last", 8)
    with pytest.raises(FrameError, match=r"'one_more' of big ends 513 bytes down"):
        frame.slot("one_more", 1)


def test_parts_and_places_stay_inside_their_slot() -> None:
    _, _, _, rec = _frame()
    assert rec.part("tail", 16, 8).off == rec.off + 16
    assert rec.at(20).off == rec.off + 20
    with pytest.raises(FrameError, match="does not fit"):
        rec.part("tail", 20, 8)
    with pytest.raises(FrameError, match="outside slot"):
        rec.at(24)


def test_overlapping_slots_are_refused_naming_both() -> None:
    _, key, _, _ = _frame()
    stray = Slot("other.stray", -10, 4)  # r10-10..-7: into key and zero
    program = [stxdw(R10, key, R7), stw(R10, stray, 0), exit_()]
    with pytest.raises(AssemblyError, match=r"slot 't.key' .*instruction 0.* 'other.stray'"):
        assemble(program)


def test_a_declared_part_may_reuse_its_slots_bytes() -> None:
    _, key, _, rec = _frame()
    child = key.part("child", 0, 4)
    hold = rec.part("hold", 0, 16)
    program = [stxdw(R10, key, R7), stw(R10, child, 0), stw(R10, hold.at(8), 1)]
    program += [stxdw(R10, rec.at(16), R7), exit_()]
    assemble(program)


def test_overlapping_parts_of_one_slot_are_refused() -> None:
    _, _, _, rec = _frame()
    one, other = rec.part("one", 0, 8), rec.part("other", 4, 8)
    with pytest.raises(
        AssemblyError, match=r"slot 't.rec.one' .*\(instruction 0\) overlaps slot 't.rec.other'"
    ):
        assemble([stw(R10, one, 0), stw(R10, other.at(4), 0), exit_()])


def test_an_access_past_its_slot_is_refused() -> None:
    _, _, zero, _ = _frame()
    # a u64 store at a 4-byte slot: the instruction names the slot, the bytes spill out
    with pytest.raises(AssemblyError, match=r"instruction 1: bytes r10 -12..-4 are outside"):
        assemble([mov64_imm(R0, 0), stxdw(R10, zero, R7), exit_()])


def test_a_slot_needs_r10_as_its_base() -> None:
    _, key, _, _ = _frame()
    with pytest.raises(AssemblyError, match="instruction 0 names a stack slot, but its base"):
        assemble([ldxw(R1, R2, key), exit_()])


def test_stack_addr_points_at_the_slot() -> None:
    _, _, _, rec = _frame()
    assert disassemble(assemble([*stack_addr(R2, rec.at(8)), exit_()])) == [
        "   0: (bf) r2 = r10",
        "   1: (07) r2 += -32",
        "   2: (95) exit",
    ]


def test_map_macros() -> None:
    _, key, zero, rec = _frame()
    program = [
        *map_lookup(3, key),
        *map_update(4, zero, rec, BPF_ANY),
        *map_update(4, zero, R7, 2),
        *map_delete(5, key),
    ]
    assert "\n".join(line[6:] for line in disassemble(assemble(program))) == "\n".join(
        [
            "(18) r1 = map[fd:3]",
            "(bf) r2 = r10",
            "(07) r2 += -8",
            "(85) call bpf_map_lookup_elem#1",
            "(18) r1 = map[fd:4]",
            "(bf) r2 = r10",
            "(07) r2 += -12",
            "(bf) r3 = r10",
            "(07) r3 += -40",
            "(b7) r4 = 0",
            "(85) call bpf_map_update_elem#2",
            "(18) r1 = map[fd:4]",
            "(bf) r2 = r10",
            "(07) r2 += -12",
            "(bf) r3 = r7",
            "(b7) r4 = 2",
            "(85) call bpf_map_update_elem#2",
            "(18) r1 = map[fd:5]",
            "(bf) r2 = r10",
            "(07) r2 += -8",
            "(85) call bpf_map_delete_elem#3",
        ]
    )


def test_scoped_labels_leave_the_exit_alone_and_keep_fragments_apart() -> None:
    one = scoped("one", [jeq_imm(R1, 0, "done"), ja("out"), label("done")])
    two = scoped("two", [jeq_imm(R1, 1, "done"), label("done")])
    assert one == [jeq_imm(R1, 0, "one/done"), ja("out"), label("one/done")]
    code = assemble([*one, *two, label("out"), exit_()])  # "done" twice: no collision
    assert len(code) == 4 * 8


def test_one_fragment_used_twice_under_one_scope_collides() -> None:
    twice = [*scoped("x", [ja("done"), label("done")]), *scoped("x", [label("done")])]
    with pytest.raises(AssemblyError, match="label 'x/done' defined twice"):
        assemble([*twice, exit_()])


def _forward(fill: int) -> list[Item]:
    """ja at slot 0 to a label `fill` instructions further: its offset is `fill`."""
    return [ja("end"), *[mov64_imm(R0, 0)] * fill, label("end"), exit_()]


def _backward(fill: int) -> list[Item]:
    """a label, `fill` instructions, then ja to the label: its offset is -(fill + 1)."""
    return [label("top"), *[mov64_imm(R0, 0)] * fill, ja("top"), exit_()]


def _jump_off(code: bytes, slot: int) -> int:
    return dict(decode(code))[slot].off


def test_a_jump_reaches_32767_slots_forward_and_no_further() -> None:
    assert _jump_off(assemble(_forward(32767)), 0) == 32767
    with pytest.raises(AssemblyError, match=r"instruction 0: label 'end' is 32768 slots away"):
        assemble(_forward(32768))


def test_a_jump_reaches_32768_slots_back_and_no_further() -> None:
    assert _jump_off(assemble(_backward(32767)), 32767) == -32768
    with pytest.raises(AssemblyError, match=r"instruction 32769: label 'top' is -32769 slots"):
        assemble(_backward(32768))


def test_a_memory_offset_beyond_16_bits_is_an_assembly_error() -> None:
    with pytest.raises(AssemblyError, match=r"instruction 1: offset 32768 does not fit"):
        assemble([mov64_imm(R0, 0), ldxw(R1, R2, 32768), exit_()])
    assemble([ldxw(R1, R2, 32767), ldxw(R1, R2, -32768), exit_()])
