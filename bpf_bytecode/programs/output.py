"""How a program hands its record to user space: the transport's half inside the kernel."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Union

from bpf_bytecode.asm import (
    add64_imm,
    call,
    jeq_imm,
    label,
    ld_map_fd,
    ldxdw,
    mov32_imm,
    mov64_imm,
    mov64_reg,
    stack_addr,
    stw,
    stxdw,
)
from bpf_bytecode.fragments import map_lookup, scoped
from bpf_bytecode.frame import StackOff
from bpf_bytecode.helpers import Helper
from bpf_bytecode.insn import Item
from bpf_bytecode.opcodes import R0, R1, R2, R3, R4, R5, R10, Reg

BPF_F_CURRENT_CPU = 0xFFFFFFFF  # perf_event_output flag: the ring of the CPU we run on
BPF_RB_NO_WAKEUP = 1  # ringbuf_output flag: leave the reader asleep; it polls on its own clock


def _count_failure(lost_fd: int, key: StackOff) -> list[Item]:
    """After an output helper: if it failed (r0 != 0), add 1 to this CPU's u64 at key 0 of
    `lost_fd`, a BPF_MAP_TYPE_PERCPU_ARRAY. The count is exact and known at once, where perf's
    LOST records only come with the next record that fits in the same ring."""
    return scoped(
        "count_failure",
        [
            jeq_imm(R0, 0, "sent"),
            # the counter's key, 0, in a stack word that is free now (the record's first)
            stw(R10, key, 0),
            *map_lookup(lost_fd, key),
            jeq_imm(R0, 0, "sent"),  # never null for key 0, but the verifier asks
            # this CPU's own slot, and programs do not nest on a CPU: no atomic add needed
            ldxdw(R1, R0, 0),
            add64_imm(R1, 1),
            stxdw(R0, 0, R1),
            label("sent"),
        ],
    )


@dataclass(frozen=True)
class PerfOutput:
    """bpf_perf_event_output() into a BPF_MAP_TYPE_PERF_EVENT_ARRAY with one ring per CPU; a
    record that does not fit is counted in `lost_fd` (see _count_failure)."""

    events_fd: int
    lost_fd: int

    def emit(self, ctx: Reg, data: StackOff | Reg, size: int, key: StackOff) -> list[Item]:
        return [
            mov64_reg(R1, ctx),
            ld_map_fd(R2, self.events_fd),
            # a 64-bit mov would sign-extend to 0xffff...ffff: the verifier takes it, the helper
            # then rejects the flags at run time and nothing is ever emitted
            mov32_imm(R3, BPF_F_CURRENT_CPU),
            *_address(R4, data),
            mov64_imm(R5, size),
            call(Helper.PERF_EVENT_OUTPUT),
            *_count_failure(self.lost_fd, key),
        ]


@dataclass(frozen=True)
class RingbufOutput:
    """bpf_ringbuf_output() into a BPF_MAP_TYPE_RINGBUF (5.8+) that all CPUs share.

    A record that does not fit is counted in `lost_fd` (see _count_failure).
    """

    ringbuf_fd: int
    lost_fd: int

    def emit(self, ctx: Reg, data: StackOff | Reg, size: int, key: StackOff) -> list[Item]:
        return [
            ld_map_fd(R1, self.ringbuf_fd),
            *_address(R2, data),
            mov64_imm(R3, size),
            mov64_imm(R4, BPF_RB_NO_WAKEUP),
            call(Helper.RINGBUF_OUTPUT),
            *_count_failure(self.lost_fd, key),
        ]


Output = Union[PerfOutput, RingbufOutput]


def _address(dst: Reg, data: StackOff | Reg) -> list[Item]:
    """dst = the record's address: register data, or the record's place on the stack."""
    if isinstance(data, Reg):
        return [mov64_reg(dst, data)]
    return [*stack_addr(dst, data)]


def emit_output(output: Output, ctx: Reg, record: StackOff, size: int) -> list[Item]:
    """Send the `size` bytes of the record on the stack; `ctx` holds the program's context.

    Clobbers r0-r5, and the record's first 4 bytes when the output fails (the counter's key).
    """
    return output.emit(ctx, record, size, record)


def emit_output_from(output: Output, ctx: Reg, data: Reg, size: int, key: StackOff) -> list[Item]:
    """Send the `size` bytes that register `data` (not r1-r5) points to, a map value; `ctx`
    holds the program's context. Clobbers r0-r5 and the 4 stack bytes at `key`.
    """
    return output.emit(ctx, data, size, key)
