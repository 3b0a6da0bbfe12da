"""Readable text for encoded programs, in the kernel verifier log's notation.

 0: (bf) r6 = r1
 1: (79) r7 = *(u64 *)(r6 +16)
 2: (15) if r7 == 0x0 goto pc+12
 ...
12: (85) call bpf_perf_event_output#25
"""

from __future__ import annotations

from bpf_bytecode.helpers import Helper
from bpf_bytecode.insn import Insn, decode
from bpf_bytecode.opcodes import (
    LD_IMM64,
    AluOp,
    InsnClass,
    JmpOp,
    Mode,
    PseudoSrc,
    Size,
    Source,
)

_ALU_SYMBOL = {
    AluOp.ADD: "+=",
    AluOp.SUB: "-=",
    AluOp.MUL: "*=",
    AluOp.DIV: "/=",
    AluOp.OR: "|=",
    AluOp.AND: "&=",
    AluOp.LSH: "<<=",
    AluOp.RSH: ">>=",
    AluOp.MOD: "%=",
    AluOp.XOR: "^=",
    AluOp.MOV: "=",
    AluOp.ARSH: "s>>=",
}
_JUMP_SYMBOL = {
    JmpOp.JEQ: "==",
    JmpOp.JGT: ">",
    JmpOp.JGE: ">=",
    JmpOp.JSET: "&",
    JmpOp.JNE: "!=",
    JmpOp.JSGT: "s>",
    JmpOp.JSGE: "s>=",
    JmpOp.JLT: "<",
    JmpOp.JLE: "<=",
    JmpOp.JSLT: "s<",
    JmpOp.JSLE: "s<=",
}
_SIZE_NAME = {Size.B: "u8", Size.H: "u16", Size.W: "u32", Size.DW: "u64"}
# atomic operations' imm (asm.atomic): their names, "fetch_" when they return the old value
_ATOMIC_NAME = {
    **dict(((0x00, "+="), (0x40, "|="), (0x50, "&="), (0xA0, "^="))),
    **{op | 1: f"fetch_{name}" for op, name in ((0x00, "add"), (0x40, "or"), (0x50, "and"))},
    0xA1: "fetch_xor",
    0xE1: "xchg",
    0xF1: "cmpxchg",
}


def format_insn(insn: Insn) -> str:
    """One instruction as text; jumps show their raw offset (pc+N)."""
    cls = InsnClass.of(insn.opcode)
    if insn.opcode == LD_IMM64:
        return _format_ld_imm64(insn)
    if cls.is_alu:
        return _format_alu(cls, insn)
    if cls.is_jump:
        return _format_jump(cls, insn)
    if cls == InsnClass.STX and Mode.of(insn.opcode) == Mode.ATOMIC:
        name = _ATOMIC_NAME.get(insn.imm, hex(insn.imm))
        return f"lock {_mem_ref(insn, insn.dst)} {name} r{insn.src}"
    if Mode.of(insn.opcode) != Mode.MEM:
        return f"<unsupported opcode {insn.opcode:#04x}>"
    if cls == InsnClass.LDX:
        return f"r{insn.dst} = {_mem_ref(insn, insn.src)}"
    if cls == InsnClass.STX:
        return f"{_mem_ref(insn, insn.dst)} = r{insn.src}"
    return f"{_mem_ref(insn, insn.dst)} = {insn.imm}"


def _mem_ref(insn: Insn, base: int) -> str:
    return f"*({_SIZE_NAME[Size.of(insn.opcode)]} *)(r{base} {insn.off:+d})"


def _format_ld_imm64(insn: Insn) -> str:
    if insn.src == PseudoSrc.MAP_FD:
        return f"r{insn.dst} = map[fd:{insn.imm}]"
    return f"r{insn.dst} = {insn.imm:#x} ll"


def _format_alu(cls: InsnClass, insn: Insn) -> str:
    reg = "r" if cls == InsnClass.ALU64 else "w"
    op = AluOp.of(insn.opcode)
    if op == AluOp.NEG:
        return f"{reg}{insn.dst} = -{reg}{insn.dst}"
    if op == AluOp.END:
        order = "be" if Source.of(insn.opcode) == Source.X else "le"
        return f"r{insn.dst} = {order}{insn.imm} r{insn.dst}"
    operand = f"{reg}{insn.src}" if Source.of(insn.opcode) == Source.X else str(insn.imm)
    return f"{reg}{insn.dst} {_ALU_SYMBOL[op]} {operand}"


def _format_jump(cls: InsnClass, insn: Insn) -> str:
    op = JmpOp.of(insn.opcode)
    if op == JmpOp.CALL:
        try:
            return f"call bpf_{Helper(insn.imm).name.lower()}#{insn.imm}"
        except ValueError:
            return f"call #{insn.imm}"
    if op == JmpOp.EXIT:
        return "exit"
    if op == JmpOp.JA:
        return f"goto pc{insn.off:+d}"
    reg = "r" if cls == InsnClass.JMP else "w"
    operand = f"{reg}{insn.src}" if Source.of(insn.opcode) == Source.X else f"{insn.imm:#x}"
    return f"if {reg}{insn.dst} {_JUMP_SYMBOL[op]} {operand} goto pc{insn.off:+d}"


def disassemble(code: bytes) -> list[str]:
    """One line per instruction: slot index, opcode byte and text."""
    return [f"{slot:4d}: ({insn.opcode:02x}) {format_insn(insn)}" for slot, insn in decode(code)]
