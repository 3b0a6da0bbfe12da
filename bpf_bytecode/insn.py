"""Instructions as small immutable values, and the assembler that turns them into bytes.

An instruction is 8 bytes: opcode:8 | src:4 dst:4 | offset:16 | imm:32 (little endian), except the
64-bit immediate load, which takes two such slots. Jumps name their target by a label; `assemble`
resolves every label in one pass over the slots and never edits its input.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, replace
from typing import Union

from bpf_bytecode.frame import Slot, check_slots
from bpf_bytecode.opcodes import LD_IMM64, AluOp, InsnClass, JmpOp, Mode, Reg, Size, Source

INSN_SIZE = 8
_SLOT = struct.Struct("<BBhi")
OFF_MIN, OFF_MAX = -(1 << 15), (1 << 15) - 1
"""The range of an instruction's signed 16-bit offset: a jump reaches that many slots."""


class AssemblyError(ValueError):
    """A program that cannot be encoded; the message names the instruction index and label."""


@dataclass(frozen=True)
class Insn:
    """One instruction. A jump names its target label; assemble() turns that into `off`. An
    instruction that addresses the stack may name the slot it lies in (frame.py), for the
    assembler to check."""

    opcode: int
    dst: Reg = Reg.R0
    src: int = 0
    off: int = 0
    imm: int = 0
    target: str | None = None
    slot: Slot | None = None

    @property
    def slots(self) -> int:
        return 2 if self.opcode == LD_IMM64 else 1

    def encode(self) -> bytes:
        if self.target is not None:
            raise AssemblyError(f"jump to label {self.target!r} is unresolved; use assemble()")
        if not OFF_MIN <= self.off <= OFF_MAX:
            raise AssemblyError(f"offset {self.off} does not fit in 16 bits")
        regs = (self.src << 4) | int(self.dst)
        if self.opcode == LD_IMM64:
            low, high = self.imm & 0xFFFFFFFF, (self.imm >> 32) & 0xFFFFFFFF
            return _SLOT.pack(self.opcode, regs, self.off, _s32(low)) + _SLOT.pack(
                0, 0, 0, _s32(high)
            )
        return _SLOT.pack(self.opcode, regs, self.off, _s32(self.imm & 0xFFFFFFFF))


@dataclass(frozen=True)
class Label:
    """Marks the position of the next instruction; jumps refer to it by name."""

    name: str


Item = Union[Insn, Label]
"""What a program is made of: instructions with labels between them."""


def _s32(value: int) -> int:
    return value - (1 << 32) if value & 0x80000000 else value


def label_slots(program: Iterable[Item]) -> dict[str, int]:
    """The slot index of every label; a 64-bit load counts as two slots."""
    slots: dict[str, int] = {}
    slot = 0
    for index, item in enumerate(program):
        if isinstance(item, Label):
            if item.name in slots:
                raise AssemblyError(f"label {item.name!r} defined twice (item {index})")
            slots[item.name] = slot
        else:
            slot += item.slots
    return slots


def _stack_bytes(insn: Insn) -> tuple[int, int]:
    """The bytes below r10 an instruction that names a slot reaches: a load or store its
    own; an address (stack_addr's r += off) everything from there to the slot's end, since
    a helper given it may write any of them."""
    cls = InsnClass.of(insn.opcode)
    if cls in (InsnClass.LDX, InsnClass.ST, InsnClass.STX) and Mode.of(insn.opcode) == Mode.MEM:
        if (insn.dst if cls != InsnClass.LDX else insn.src) != Reg.R10:
            raise AssemblyError("names a stack slot, but its base register is not r10")
        return insn.off, insn.off + Size.of(insn.opcode).nbytes
    if insn.opcode == InsnClass.ALU64 | AluOp.ADD | Source.K and insn.slot is not None:
        return insn.imm, insn.slot.end
    raise AssemblyError("names a stack slot, but neither loads, stores nor adds an offset")


def check_stack(program: Sequence[Item]) -> None:
    """Every access that names a slot stays inside it, and no two slots overlap unless one
    was declared inside the other (frame.py)."""
    uses: list[tuple[int, Slot, int, int]] = []
    for index, item in enumerate(program):
        if isinstance(item, Insn) and item.slot is not None:
            try:
                start, end = _stack_bytes(item)
            except AssemblyError as exc:
                raise AssemblyError(f"instruction {index} {exc}: slot {item.slot}") from None
            uses.append((index, item.slot, start, end))
    fault = check_slots(uses)
    if fault is not None:
        raise AssemblyError(fault)


def resolve(program: Sequence[Item]) -> list[Insn]:
    """The instructions with every jump's offset filled in from its label, labels dropped;
    the stack slots they name are checked first (check_stack)."""
    check_stack(program)
    slots = label_slots(program)
    resolved: list[Insn] = []
    slot = 0
    for index, item in enumerate(program):
        if isinstance(item, Label):
            continue
        slot += item.slots
        if item.target is None:
            resolved.append(item)
            continue
        if item.target not in slots:
            raise AssemblyError(f"instruction {index} jumps to undefined label {item.target!r}")
        off = slots[item.target] - slot
        if not OFF_MIN <= off <= OFF_MAX:
            raise AssemblyError(
                f"instruction {index}: label {item.target!r} is {off} slots away, beyond a jump"
                f" ({OFF_MIN} to {OFF_MAX})"
            )
        resolved.append(replace(item, off=off, target=None))
    return resolved


def assemble(program: Sequence[Item]) -> bytes:
    """Encode a program to the bytes BPF_PROG_LOAD takes."""
    indexes = [index for index, item in enumerate(program) if isinstance(item, Insn)]
    code = []
    for index, insn in zip(indexes, resolve(program)):
        try:
            code.append(insn.encode())
        except AssemblyError as exc:
            raise AssemblyError(f"instruction {index}: {exc}") from None
    return b"".join(code)


def decode(code: bytes) -> Iterator[tuple[int, Insn]]:
    """Yield (slot index, instruction) for encoded bytes; jumps keep their raw offsets."""
    if len(code) % INSN_SIZE:
        raise AssemblyError(f"{len(code)} bytes is not a whole number of instructions")
    slot, count = 0, len(code) // INSN_SIZE
    while slot < count:
        opcode, regs, off, imm = _SLOT.unpack_from(code, slot * INSN_SIZE)
        if regs & 0x0F > Reg.R10:
            raise AssemblyError(f"slot {slot}: register r{regs & 0x0F} does not exist")
        dst, src = Reg(regs & 0x0F), regs >> 4
        if opcode == LD_IMM64:
            if slot + 1 >= count:
                raise AssemblyError(f"slot {slot}: 64-bit load is missing its second slot")
            high = _SLOT.unpack_from(code, (slot + 1) * INSN_SIZE)[3]
            value = (imm & 0xFFFFFFFF) | ((high & 0xFFFFFFFF) << 32)
            yield slot, Insn(opcode, dst, src, off, value)
            slot += 2
            continue
        yield slot, Insn(opcode, dst, src, off, imm)
        slot += 1


def is_jump(insn: Insn) -> bool:
    """Whether the instruction's offset is a jump distance (not a call or exit)."""
    if not InsnClass.of(insn.opcode).is_jump:
        return False
    return JmpOp.of(insn.opcode) not in (JmpOp.CALL, JmpOp.EXIT)
