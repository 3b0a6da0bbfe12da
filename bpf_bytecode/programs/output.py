"""How a program hands its record to user space: the transport's half inside the kernel."""

from __future__ import annotations

from dataclasses import dataclass

from bpf_bytecode.asm import add64_imm, call, ld_map_fd, mov32_imm, mov64_imm, mov64_reg
from bpf_bytecode.helpers import Helper
from bpf_bytecode.insn import Item
from bpf_bytecode.opcodes import Reg

BPF_F_CURRENT_CPU = 0xFFFFFFFF  # perf_event_output flag: the ring of the CPU we run on


@dataclass(frozen=True)
class PerfOutput:
    """bpf_perf_event_output() into a BPF_MAP_TYPE_PERF_EVENT_ARRAY with one ring per CPU."""

    events_fd: int


Output = PerfOutput


def emit_output(output: Output, ctx: Reg, record_offset: int, size: int) -> list[Item]:
    """Send the `size` bytes at r10 + record_offset; `ctx` holds the program's context.

    Clobbers r0-r5.
    """
    return [
        mov64_reg(Reg.R1, ctx),
        ld_map_fd(Reg.R2, output.events_fd),
        # a 64-bit mov would sign-extend to 0xffff...ffff: the verifier takes it, the helper
        # then rejects the flags at run time and nothing is ever emitted
        mov32_imm(Reg.R3, BPF_F_CURRENT_CPU),
        mov64_reg(Reg.R4, Reg.R10),
        add64_imm(Reg.R4, record_offset),
        mov64_imm(Reg.R5, size),
        call(Helper.PERF_EVENT_OUTPUT),
    ]
