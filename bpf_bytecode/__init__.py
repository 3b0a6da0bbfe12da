"""eBPF bytecode as plain data: instruction encoding, an assembler with labels, the program
builders and a disassembler. No syscalls and no I/O: everything here runs anywhere."""

from bpf_bytecode.disasm import disassemble, format_insn
from bpf_bytecode.helpers import Helper
from bpf_bytecode.insn import INSN_SIZE, AssemblyError, Insn, Item, Label, assemble, decode, resolve
from bpf_bytecode.opcodes import AluOp, InsnClass, JmpOp, Mode, PseudoSrc, Reg, Size, Source

__all__ = [
    "INSN_SIZE",
    "AluOp",
    "AssemblyError",
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
    "Source",
    "assemble",
    "decode",
    "disassemble",
    "format_insn",
    "resolve",
]
