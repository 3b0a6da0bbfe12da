"""The assembler, decoder and disassembler, against bytes encoded by hand from the ISA spec."""

from __future__ import annotations

import pytest

from bpf_bytecode import AssemblyError, Helper, Insn, Reg, Size, assemble, decode, disassemble
from bpf_bytecode.asm import (
    ATOMIC_CMPXCHG,
    ATOMIC_FETCH,
    ATOMIC_OR,
    add64_imm,
    atomic,
    atomic_add64,
    call,
    exit_,
    ja,
    jeq_imm,
    jne_reg,
    label,
    ld_imm64,
    ld_map_fd,
    ldxdw,
    ldxw,
    mov32_imm,
    mov64_imm,
    mov64_reg,
    rsh64_imm,
    stw,
    stxdw,
)

R0, R1, R2, R3, R6, R10 = Reg.R0, Reg.R1, Reg.R2, Reg.R3, Reg.R6, Reg.R10

# (instruction, its encoding written out byte by byte: opcode, dst|src<<4, off16, imm32)
HAND_ENCODED = [
    (mov64_imm(R0, 0), "b7 00 0000 00000000"),
    (mov64_imm(R1, -1), "b7 01 0000 ffffffff"),
    (mov32_imm(R3, 0xFFFFFFFF), "b4 03 0000 ffffffff"),
    (mov64_reg(R6, R1), "bf 16 0000 00000000"),
    (add64_imm(R2, -8), "07 02 0000 f8ffffff"),
    (rsh64_imm(R1, 32), "77 01 0000 20000000"),
    (ldxdw(R1, R6, 16), "79 61 1000 00000000"),
    (ldxw(R2, R10, -4), "61 a2 fcff 00000000"),
    (stxdw(R10, -8, R0), "7b 0a f8ff 00000000"),
    (stw(R10, -24, 58), "62 0a e8ff 3a000000"),
    (call(Helper.PERF_EVENT_OUTPUT), "85 00 0000 19000000"),
    (exit_(), "95 00 0000 00000000"),
    (ld_imm64(R2, 0x1122334455667788), "18 02 0000 88776655 00 00 0000 44332211"),
    (ld_map_fd(R1, 7), "18 11 0000 07000000 00 00 0000 00000000"),
]


@pytest.mark.parametrize(("insn", "hex_bytes"), HAND_ENCODED)
def test_encoding_matches_hand_encoded_bytes(insn: Insn, hex_bytes: str) -> None:
    assert assemble([insn]) == bytes.fromhex(hex_bytes.replace(" ", ""))


def test_decode_then_assemble_round_trips() -> None:
    code = b"".join(bytes.fromhex(h.replace(" ", "")) for _, h in HAND_ENCODED)
    decoded = [insn for _, insn in decode(code)]
    assert assemble(decoded) == code
    assert [slot for slot, _ in decode(code)][-2:] == [12, 14]  # 64-bit loads take two slots


def test_labels_resolve_to_slot_offsets_counting_wide_loads() -> None:
    program = [
        jeq_imm(R1, 0, "out"),  # slot 0: jumps over 1 + 2 + 1 slots
        mov64_imm(R0, 1),  # slot 1
        ld_imm64(R2, 5),  # slots 2-3
        ja("out"),  # slot 4
        label("out"),
        exit_(),  # slot 5
    ]
    code = assemble(program)
    assert code[2:4] == (4).to_bytes(2, "little", signed=True)
    assert code[4 * 8 + 2 : 4 * 8 + 4] == (0).to_bytes(2, "little", signed=True)


def test_backward_jump() -> None:
    code = assemble([label("top"), mov64_imm(R0, 0), jne_reg(R0, R1, "top"), exit_()])
    assert int.from_bytes(code[10:12], "little", signed=True) == -2


def test_assemble_leaves_its_input_alone() -> None:
    program = [jeq_imm(R1, 0, "out"), label("out"), exit_()]
    before = list(program)
    assemble(program)
    assert program == before
    assert program[0].target == "out" and program[0].off == 0


def test_undefined_label_names_the_instruction_and_label() -> None:
    with pytest.raises(AssemblyError, match=r"instruction 1 jumps to undefined label 'nowhere'"):
        assemble([mov64_imm(R0, 0), ja("nowhere"), exit_()])


def test_duplicate_label() -> None:
    with pytest.raises(AssemblyError, match="label 'x' defined twice"):
        assemble([label("x"), label("x"), exit_()])


def test_decode_rejects_partial_instructions() -> None:
    with pytest.raises(AssemblyError, match="not a whole number"):
        list(decode(b"\x95" * 9))


GOLDEN = """\
   0: (bf) r6 = r1
   1: (79) r7 = *(u64 *)(r6 +16)
   2: (15) if r7 == 0x0 goto pc+6
   3: (18) r1 = map[fd:4]
   5: (b4) w3 = -1
   6: (7b) *(u64 *)(r10 -8) = r7
   7: (62) *(u32 *)(r10 -16) = 58
   8: (85) call bpf_perf_event_output#25
   9: (b7) r0 = 0
  10: (95) exit"""


def test_disassembly_golden() -> None:
    program = [
        mov64_reg(R6, R1),
        ldxdw(Reg.R7, R6, 16),
        jeq_imm(Reg.R7, 0, "out"),
        ld_map_fd(R1, 4),
        mov32_imm(R3, 0xFFFFFFFF),
        stxdw(R10, -8, Reg.R7),
        stw(R10, -16, 58),
        call(Helper.PERF_EVENT_OUTPUT),
        label("out"),
        mov64_imm(R0, 0),
        exit_(),
    ]
    assert "\n".join(disassemble(assemble(program))) == GOLDEN


def test_atomic_operations_encode_and_print() -> None:
    code = assemble(
        [
            atomic_add64(Reg.R1, 8, Reg.R2),
            atomic(Size.W, ATOMIC_OR | ATOMIC_FETCH, Reg.R1, 0, Reg.R3),
            atomic(Size.DW, ATOMIC_CMPXCHG, Reg.R1, 16, Reg.R4),
        ]
    )
    # BPF_STX | BPF_ATOMIC | size: 0xdb (u64), 0xc3 (u32); the operation in imm
    assert code[0::8] == bytes([0xDB, 0xC3, 0xDB])
    assert [line.split(") ", 1)[1] for line in disassemble(code)] == [
        "lock *(u64 *)(r1 +8) += r2",
        "lock *(u32 *)(r1 +0) fetch_or r3",
        "lock *(u64 *)(r1 +16) cmpxchg r4",
    ]
    with pytest.raises(ValueError, match="32 or 64"):
        atomic(Size.B, 0, Reg.R1, 0, Reg.R2)
