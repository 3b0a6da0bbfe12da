"""The eBPF instruction set's numbers: classes, operations, sizes, modes and registers.

An opcode byte is laid out by class (Documentation/bpf/standardization/instruction-set.rst):

    ALU/ALU64/JMP/JMP32:   op:4 | source:1 | class:3
    LD/LDX/ST/STX:         mode:3 | size:2 | class:3
"""

from __future__ import annotations

from enum import IntEnum


class InsnClass(IntEnum):
    LD = 0x00
    LDX = 0x01
    ST = 0x02
    STX = 0x03
    ALU = 0x04
    JMP = 0x05
    JMP32 = 0x06
    ALU64 = 0x07

    @classmethod
    def of(cls, opcode: int) -> InsnClass:
        return cls(opcode & 0x07)

    @property
    def is_alu(self) -> bool:
        return self in (InsnClass.ALU, InsnClass.ALU64)

    @property
    def is_jump(self) -> bool:
        return self in (InsnClass.JMP, InsnClass.JMP32)


class Source(IntEnum):
    """Where an ALU or jump instruction takes its second operand from."""

    K = 0x00  # the 32-bit immediate
    X = 0x08  # the source register

    @classmethod
    def of(cls, opcode: int) -> Source:
        return cls(opcode & 0x08)


class AluOp(IntEnum):
    ADD = 0x00
    SUB = 0x10
    MUL = 0x20
    DIV = 0x30
    OR = 0x40
    AND = 0x50
    LSH = 0x60
    RSH = 0x70
    NEG = 0x80
    MOD = 0x90
    XOR = 0xA0
    MOV = 0xB0
    ARSH = 0xC0
    END = 0xD0  # byte swap; Source.X means to big endian

    @classmethod
    def of(cls, opcode: int) -> AluOp:
        return cls(opcode & 0xF0)


class JmpOp(IntEnum):
    JA = 0x00
    JEQ = 0x10
    JGT = 0x20
    JGE = 0x30
    JSET = 0x40
    JNE = 0x50
    JSGT = 0x60
    JSGE = 0x70
    CALL = 0x80
    EXIT = 0x90
    JLT = 0xA0
    JLE = 0xB0
    JSLT = 0xC0
    JSLE = 0xD0

    @classmethod
    def of(cls, opcode: int) -> JmpOp:
        return cls(opcode & 0xF0)


class Size(IntEnum):
    W = 0x00  # 4 bytes
    H = 0x08  # 2 bytes
    B = 0x10  # 1 byte
    DW = 0x18  # 8 bytes

    @classmethod
    def of(cls, opcode: int) -> Size:
        return cls(opcode & 0x18)

    @property
    def nbytes(self) -> int:
        return {Size.W: 4, Size.H: 2, Size.B: 1, Size.DW: 8}[self]


class Mode(IntEnum):
    IMM = 0x00  # with Size.DW: the two-slot 64-bit immediate load
    ABS = 0x20
    IND = 0x40
    MEM = 0x60
    ATOMIC = 0xC0

    @classmethod
    def of(cls, opcode: int) -> Mode:
        return cls(opcode & 0xE0)


class Reg(IntEnum):
    """R0 holds return values, R1-R5 arguments, R6-R9 survive calls, R10 is the frame pointer."""

    R0 = 0
    R1 = 1
    R2 = 2
    R3 = 3
    R4 = 4
    R5 = 5
    R6 = 6
    R7 = 7
    R8 = 8
    R9 = 9
    R10 = 10


R0, R1, R2, R3, R4, R5 = Reg.R0, Reg.R1, Reg.R2, Reg.R3, Reg.R4, Reg.R5
R6, R7, R8, R9, R10 = Reg.R6, Reg.R7, Reg.R8, Reg.R9, Reg.R10
"""The registers by their assembly names, for builders that read like assembly."""


class PseudoSrc(IntEnum):
    """The src register of a 64-bit immediate load, telling the kernel what the constant is."""

    NONE = 0
    MAP_FD = 1  # BPF_PSEUDO_MAP_FD: the immediate is a map fd, replaced by the map's address
    MAP_VALUE = 2  # BPF_PSEUDO_MAP_VALUE: map fd plus an offset into its value


LD_IMM64 = InsnClass.LD | Size.DW | Mode.IMM
"""The opcode of the only instruction that takes two slots."""
