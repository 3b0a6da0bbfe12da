"""The kernel halves of the transports, as the instructions they emit."""

from __future__ import annotations

from bpf_bytecode import Reg, assemble, disassemble
from bpf_bytecode.asm import exit_, mov64_imm
from bpf_bytecode.programs.output import RingbufOutput, emit_output

RINGBUF_GOLDEN = """\
   0: (18) r1 = map[fd:3]
   2: (bf) r2 = r10
   3: (07) r2 += -80
   4: (b7) r3 = 72
   5: (b7) r4 = 1
   6: (85) call bpf_ringbuf_output#130
   7: (15) if r0 == 0x0 goto pc+10
   8: (62) *(u32 *)(r10 -80) = 0
   9: (18) r1 = map[fd:4]
  11: (bf) r2 = r10
  12: (07) r2 += -80
  13: (85) call bpf_map_lookup_elem#1
  14: (15) if r0 == 0x0 goto pc+3
  15: (79) r1 = *(u64 *)(r0 +0)
  16: (07) r1 += 1
  17: (7b) *(u64 *)(r0 +0) = r1
  18: (b7) r0 = 0
  19: (95) exit"""


def test_ringbuf_output_counts_what_did_not_fit() -> None:
    """NO_WAKEUP output; on failure the per-CPU counter at key 0 (the spent record's first
    word) goes up by one, behind the null check the verifier asks for."""
    program = [*emit_output(RingbufOutput(3, 4), Reg.R6, -80, 72), mov64_imm(Reg.R0, 0), exit_()]
    assert "\n".join(disassemble(assemble(program))) == RINGBUF_GOLDEN
