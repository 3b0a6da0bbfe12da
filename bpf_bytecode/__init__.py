"""eBPF bytecode as plain data: instruction encoding, an assembler with labels, named stack
frames, the program builders and a disassembler. No syscalls and no I/O: everything here runs
anywhere."""

from bpf_bytecode.disasm import disassemble, format_insn
from bpf_bytecode.frame import Frame, FrameError, Slot, StackRef
from bpf_bytecode.helpers import Helper
from bpf_bytecode.insn import INSN_SIZE, AssemblyError, Insn, Item, Label, assemble, decode, resolve
from bpf_bytecode.opcodes import (
    R0,
    R1,
    R2,
    R3,
    R4,
    R5,
    R6,
    R7,
    R8,
    R9,
    R10,
    AluOp,
    InsnClass,
    JmpOp,
    Mode,
    PseudoSrc,
    Reg,
    Size,
    Source,
)

__all__ = [
    "INSN_SIZE",
    "R0",
    "R1",
    "R2",
    "R3",
    "R4",
    "R5",
    "R6",
    "R7",
    "R8",
    "R9",
    "R10",
    "AluOp",
    "AssemblyError",
    "Frame",
    "FrameError",
    "Helper",
    "Insn",
    "InsnClass",
    "Item",
    "JmpOp",
    "Label",
    "Mode",
    "PseudoSrc",
    "Reg",
    "Size",
    "Slot",
    "Source",
    "StackRef",
    "assemble",
    "decode",
    "disassemble",
    "format_insn",
    "resolve",
]
