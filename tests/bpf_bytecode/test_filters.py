"""The filter builders' own checks and choices, below what the golden disassembly pins: which
filters they refuse, and when a value needs a 64-bit load instead of an immediate."""

from __future__ import annotations

from typing import Any

import pytest

from bpf_bytecode.insn import Insn
from bpf_bytecode.opcodes import Reg
from bpf_bytecode.programs.filters import MAX_VALUES, Filters, task_filters

LD_IMM64 = 0x18  # BPF_LD | BPF_IMM | BPF_DW


@pytest.mark.parametrize("comm", [b"a", b"f" * 15])
def test_a_comm_of_1_to_15_bytes_is_taken(comm: bytes) -> None:
    assert Filters(comms=(comm,)).comms == (comm,)


@pytest.mark.parametrize("comm", [b"", b"s" * 16])
def test_an_empty_comm_or_one_of_16_bytes_is_refused(comm: bytes) -> None:
    # the kernel keeps 15 bytes and a NUL: a 16-byte name could never match
    with pytest.raises(ValueError, match=f"a comm has 1 to 15 bytes, not {len(comm)}"):
        Filters(comms=(comm,))


@pytest.mark.parametrize("kind", ["pids", "tids", "uids", "comms", "cgroups"])
def test_at_most_max_values_of_each_kind(kind: str) -> None:
    values: list[Any] = [b"c%d" % i if kind == "comms" else i for i in range(MAX_VALUES + 1)]
    assert len(getattr(Filters(**{kind: tuple(values[:-1])}), kind)) == MAX_VALUES
    with pytest.raises(ValueError, match=f"at most {MAX_VALUES} {kind} can be filtered on"):
        Filters(**{kind: tuple(values)})


@pytest.mark.parametrize(
    "value, wide",
    [(-(1 << 31), False), ((1 << 31) - 1, False), (-(1 << 31) - 1, True), (1 << 31, True)],
)
def test_a_value_beyond_a_signed_32_bit_immediate_is_loaded_whole(value: int, wide: bool) -> None:
    # jeq's immediate is sign-extended from 32 bits; anything wider takes ld_imm64 and jeq_reg
    code = task_filters(Filters(cgroups=(value,)), Reg.R6, -8, "skip")
    loads = [item for item in code if isinstance(item, Insn) and item.opcode == LD_IMM64]
    assert [item.imm for item in loads] == ([value % 2**64] if wide else [])
