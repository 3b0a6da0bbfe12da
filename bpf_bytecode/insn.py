"""Instructions as small immutable values, and the assembler that turns them into bytes.

An instruction is 8 bytes: opcode:8 | src:4 dst:4 | offset:16 | imm:32 (little endian), except the
64-bit immediate load, which takes two such slots. Jumps name their target by a label; `assemble`
resolves every label in one pass over the slots and never edits its input.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Union

from bpf_bytecode.opcodes import LD_IMM64, InsnClass, JmpOp, Reg

INSN_SIZE = 8
_SLOT = struct.Struct("<BBhi")


class AssemblyError(ValueError):
    """A program that cannot be encoded; the message names the instruction index and label."""


@dataclass(frozen=True)
class Insn:
    """One instruction. A jump names its target label; assemble() turns that into `off`."""

    opcode: int
    dst: Reg = Reg.R0
    src: int = 0
    off: int = 0
    imm: int = 0
    target: str | None = None

    @property
    def slots(self) -> int:
        return 2 if self.opcode == LD_IMM64 else 1

    def encode(self) -> bytes:
        if self.target is not None:
            raise AssemblyError(f"jump to label {self.target!r} is unresolved; use assemble()")
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


def resolve(program: Sequence[Item]) -> list[Insn]:
    """The instructions with every jump's offset filled in from its label, labels dropped."""
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
        if not -(1 << 15) <= off < (1 << 15):
            raise AssemblyError(
                f"instruction {index}: label {item.target!r} is {off} slots away, beyond a jump"
            )
        resolved.append(Insn(item.opcode, item.dst, item.src, off, item.imm))
    return resolved


def assemble(program: Sequence[Item]) -> bytes:
    """Encode a program to the bytes BPF_PROG_LOAD takes."""
    return b"".join(insn.encode() for insn in resolve(program))


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
