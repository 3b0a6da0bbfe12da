"""Instruction constructors that read like the assembly they emit.

    ldxdw(R7, R6, 16)          r7 = *(u64 *)(r6 + 16)
    jeq_imm(R7, 0, "out")      if r7 == 0 goto out
    call(Helper.KTIME_GET_NS)  call bpf_ktime_get_ns
    label("out")               out:

Names: `<op>64_imm`, `<op>64_reg` for 64-bit ALU; `<op>32_*` for 32-bit ALU (which zeroes the upper
half of dst); `j<cond>_imm`, `j<cond>_reg` and `j<cond>32_*` for jumps; `ldx<size>`, `stx<size>`
and `st<size>` for memory, with sizes b, h, w, dw.
"""

from __future__ import annotations

from typing import Callable

from bpf_bytecode.frame import StackOff, stack_ref
from bpf_bytecode.helpers import Helper
from bpf_bytecode.insn import Insn, Label
from bpf_bytecode.opcodes import (
    LD_IMM64,
    AluOp,
    InsnClass,
    JmpOp,
    Mode,
    PseudoSrc,
    Reg,
    Size,
    Source,
)

AluImm = Callable[[Reg, int], Insn]
AluReg = Callable[[Reg, Reg], Insn]
JumpImm = Callable[[Reg, int, str], Insn]
JumpReg = Callable[[Reg, Reg, str], Insn]


def label(name: str) -> Label:
    return Label(name)


def _alu_imm(cls: InsnClass, op: AluOp) -> AluImm:
    def build(dst: Reg, imm: int) -> Insn:
        return Insn(cls | op | Source.K, dst, 0, 0, imm)

    return build


def _alu_reg(cls: InsnClass, op: AluOp) -> AluReg:
    def build(dst: Reg, src: Reg) -> Insn:
        return Insn(cls | op | Source.X, dst, src)

    return build


mov64_imm = _alu_imm(InsnClass.ALU64, AluOp.MOV)
mov64_reg = _alu_reg(InsnClass.ALU64, AluOp.MOV)
add64_imm = _alu_imm(InsnClass.ALU64, AluOp.ADD)
add64_reg = _alu_reg(InsnClass.ALU64, AluOp.ADD)
sub64_imm = _alu_imm(InsnClass.ALU64, AluOp.SUB)
sub64_reg = _alu_reg(InsnClass.ALU64, AluOp.SUB)
and64_imm = _alu_imm(InsnClass.ALU64, AluOp.AND)
and64_reg = _alu_reg(InsnClass.ALU64, AluOp.AND)
or64_imm = _alu_imm(InsnClass.ALU64, AluOp.OR)
or64_reg = _alu_reg(InsnClass.ALU64, AluOp.OR)
xor64_imm = _alu_imm(InsnClass.ALU64, AluOp.XOR)
xor64_reg = _alu_reg(InsnClass.ALU64, AluOp.XOR)
lsh64_imm = _alu_imm(InsnClass.ALU64, AluOp.LSH)
rsh64_imm = _alu_imm(InsnClass.ALU64, AluOp.RSH)
arsh64_imm = _alu_imm(InsnClass.ALU64, AluOp.ARSH)
mul64_imm = _alu_imm(InsnClass.ALU64, AluOp.MUL)
div64_imm = _alu_imm(InsnClass.ALU64, AluOp.DIV)
mod64_imm = _alu_imm(InsnClass.ALU64, AluOp.MOD)

mov32_imm = _alu_imm(InsnClass.ALU, AluOp.MOV)
mov32_reg = _alu_reg(InsnClass.ALU, AluOp.MOV)
add32_imm = _alu_imm(InsnClass.ALU, AluOp.ADD)
and32_imm = _alu_imm(InsnClass.ALU, AluOp.AND)


def neg64(dst: Reg) -> Insn:
    return Insn(InsnClass.ALU64 | AluOp.NEG, dst)


def _jump_imm(cls: InsnClass, op: JmpOp) -> JumpImm:
    def build(dst: Reg, imm: int, target: str) -> Insn:
        return Insn(cls | op | Source.K, dst, 0, 0, imm, target)

    return build


def _jump_reg(cls: InsnClass, op: JmpOp) -> JumpReg:
    def build(dst: Reg, src: Reg, target: str) -> Insn:
        return Insn(cls | op | Source.X, dst, src, 0, 0, target)

    return build


jeq_imm = _jump_imm(InsnClass.JMP, JmpOp.JEQ)
jeq_reg = _jump_reg(InsnClass.JMP, JmpOp.JEQ)
jne_imm = _jump_imm(InsnClass.JMP, JmpOp.JNE)
jne_reg = _jump_reg(InsnClass.JMP, JmpOp.JNE)
jgt_imm = _jump_imm(InsnClass.JMP, JmpOp.JGT)
jgt_reg = _jump_reg(InsnClass.JMP, JmpOp.JGT)
jge_imm = _jump_imm(InsnClass.JMP, JmpOp.JGE)
jge_reg = _jump_reg(InsnClass.JMP, JmpOp.JGE)
jlt_imm = _jump_imm(InsnClass.JMP, JmpOp.JLT)
jle_imm = _jump_imm(InsnClass.JMP, JmpOp.JLE)
jsgt_imm = _jump_imm(InsnClass.JMP, JmpOp.JSGT)
jsge_imm = _jump_imm(InsnClass.JMP, JmpOp.JSGE)
jslt_imm = _jump_imm(InsnClass.JMP, JmpOp.JSLT)
jsle_imm = _jump_imm(InsnClass.JMP, JmpOp.JSLE)
jset_imm = _jump_imm(InsnClass.JMP, JmpOp.JSET)

jeq32_imm = _jump_imm(InsnClass.JMP32, JmpOp.JEQ)
jne32_imm = _jump_imm(InsnClass.JMP32, JmpOp.JNE)


def ja(target: str) -> Insn:
    return Insn(InsnClass.JMP | JmpOp.JA, Reg.R0, 0, 0, 0, target)


# A memory instruction's offset is a number, or with base r10 a stack slot (frame.py) or a
# place in one, which the instruction then names for the assembler's check.


def _load(size: Size) -> Callable[[Reg, Reg, StackOff], Insn]:
    def build(dst: Reg, src: Reg, off: StackOff) -> Insn:
        raw, slot = stack_ref(off)
        return Insn(InsnClass.LDX | Mode.MEM | size, dst, src, raw, slot=slot)

    return build


def _store_reg(size: Size) -> Callable[[Reg, StackOff, Reg], Insn]:
    def build(dst: Reg, off: StackOff, src: Reg) -> Insn:
        raw, slot = stack_ref(off)
        return Insn(InsnClass.STX | Mode.MEM | size, dst, src, raw, slot=slot)

    return build


def _store_imm(size: Size) -> Callable[[Reg, StackOff, int], Insn]:
    def build(dst: Reg, off: StackOff, imm: int) -> Insn:
        raw, slot = stack_ref(off)
        return Insn(InsnClass.ST | Mode.MEM | size, dst, 0, raw, imm, slot=slot)

    return build


ldxb, ldxh, ldxw, ldxdw = (_load(size) for size in (Size.B, Size.H, Size.W, Size.DW))
"""dst = *(size *)(src + off)"""
stxb, stxh, stxw, stxdw = (_store_reg(size) for size in (Size.B, Size.H, Size.W, Size.DW))
"""*(size *)(dst + off) = src"""
stb, sth, stw, stdw = (_store_imm(size) for size in (Size.B, Size.H, Size.W, Size.DW))
"""*(size *)(dst + off) = imm"""


# Atomic operations (BPF_STX | BPF_ATOMIC, 5.12 for all but add; add since the start as XADD):
# the operation in imm, | FETCH to get the old value back in src (r0 for cmpxchg).
ATOMIC_ADD, ATOMIC_OR, ATOMIC_AND, ATOMIC_XOR = 0x00, 0x40, 0x50, 0xA0
ATOMIC_FETCH = 0x01
ATOMIC_XCHG = 0xE0 | ATOMIC_FETCH
ATOMIC_CMPXCHG = 0xF0 | ATOMIC_FETCH


def atomic(size: Size, op: int, dst: Reg, off: int, src: Reg) -> Insn:
    """*(size *)(dst + off) op= src, atomically; `size` W or DW. With ATOMIC_FETCH in op, src
    gets the old value; ATOMIC_XCHG swaps; ATOMIC_CMPXCHG stores src where the old value equals
    r0, and r0 gets the old value."""
    if size not in (Size.W, Size.DW):
        raise ValueError("atomic operations are 32 or 64 bits wide")
    return Insn(InsnClass.STX | Mode.ATOMIC | size, dst, src, off, op)


def atomic_add64(dst: Reg, off: int, src: Reg) -> Insn:
    """*(u64 *)(dst + off) += src, atomically: a counter shared by every CPU."""
    return atomic(Size.DW, ATOMIC_ADD, dst, off, src)


def stack_addr(dst: Reg, where: StackOff) -> list[Insn]:
    """dst = r10 + off: the address of a stack slot (or of a place in one), for a helper."""
    raw, slot = stack_ref(where)
    return [
        mov64_reg(dst, Reg.R10),
        Insn(InsnClass.ALU64 | AluOp.ADD | Source.K, dst, imm=raw, slot=slot),
    ]


def ld_imm64(dst: Reg, imm: int) -> Insn:
    """dst = imm, a full 64-bit constant (two slots)."""
    return Insn(LD_IMM64, dst, PseudoSrc.NONE, 0, imm & 0xFFFFFFFFFFFFFFFF)


def ld_map_fd(dst: Reg, map_fd: int) -> Insn:
    """dst = the map behind map_fd; the kernel swaps the fd for the map's address at load."""
    return Insn(LD_IMM64, dst, PseudoSrc.MAP_FD, 0, map_fd)


def call(helper: Helper) -> Insn:
    return Insn(InsnClass.JMP | JmpOp.CALL, Reg.R0, 0, 0, helper)


def exit_() -> Insn:
    return Insn(InsnClass.JMP | JmpOp.EXIT)
