"""Filters compiled into the programs, so that a filtered-out call never reaches a ring.

Kinds combine with AND; the values of one kind with OR. Each kind is a short run of compares:

    r1 = <the task's value>
    if r1 == <value 1> goto pass_<kind>
    if r1 == <value 2> goto pass_<kind>
    goto out
  pass_<kind>:

A followed process tree is a hash map of tgids that the fork tracker fills (see follow.py).
"""

from __future__ import annotations

from dataclasses import dataclass

from bpf_bytecode.asm import (
    add64_imm,
    call,
    ja,
    jeq_imm,
    jeq_reg,
    jne_reg,
    label,
    ld_imm64,
    ld_map_fd,
    ldxdw,
    mov32_reg,
    mov64_reg,
    rsh64_imm,
    stxw,
)
from bpf_bytecode.helpers import Helper
from bpf_bytecode.insn import Item
from bpf_bytecode.opcodes import Reg

R0, R1, R2, R10 = Reg.R0, Reg.R1, Reg.R2, Reg.R10

COMM_SIZE = 16
MAX_VALUES = 64  # per kind: each value is one or two instructions in every program


@dataclass(frozen=True)
class Filters:
    """What the programs drop in the kernel. Empty means no filter of that kind."""

    pids: tuple[int, ...] = ()  # tgids
    tids: tuple[int, ...] = ()
    uids: tuple[int, ...] = ()
    comms: tuple[bytes, ...] = ()  # each 1 to 15 bytes
    cgroups: tuple[int, ...] = ()  # cgroup v2 ids
    followed_fd: int | None = None  # a hash map of followed tgids (u32 -> anything)

    def __post_init__(self) -> None:
        for comm in self.comms:
            if not 0 < len(comm) < COMM_SIZE:
                raise ValueError(f"a comm has 1 to {COMM_SIZE - 1} bytes, not {len(comm)}")
        for kind in ("pids", "tids", "uids", "comms", "cgroups"):
            if len(getattr(self, kind)) > MAX_VALUES:
                raise ValueError(f"at most {MAX_VALUES} {kind} can be filtered on")


NO_FILTERS = Filters()


def _one_of(kind: str, values: tuple[int, ...], skip: str) -> list[Item]:
    """r1 holds the task's value: go on if it is one of `values`, else to `skip`."""
    passed = f"pass_{kind}"
    code: list[Item] = []
    for value in values:
        if -(1 << 31) <= value < (1 << 31):
            code.append(jeq_imm(R1, value, passed))
        else:  # an immediate is sign-extended from 32 bits: wider values need a register
            code += [ld_imm64(R2, value), jeq_reg(R1, R2, passed)]
    return [*code, ja(skip), label(passed)]


def task_filters(filters: Filters, pid_tgid: Reg, key_slot: int, skip: str) -> list[Item]:
    """Filters on who the task is. `pid_tgid` holds bpf_get_current_pid_tgid() and must
    survive calls (r6-r9); `key_slot` is 4 free stack bytes. Clobbers r0-r5."""
    code: list[Item] = []
    if filters.pids:
        code += [mov64_reg(R1, pid_tgid), rsh64_imm(R1, 32), *_one_of("pid", filters.pids, skip)]
    if filters.tids:
        # a 32-bit mov zero-extends: r1 = the low half, the tid
        code += [mov32_reg(R1, pid_tgid), *_one_of("tid", filters.tids, skip)]
    if filters.uids:
        code += [
            call(Helper.GET_CURRENT_UID_GID),
            mov32_reg(R1, R0),  # the low half: the uid
            *_one_of("uid", filters.uids, skip),
        ]
    if filters.cgroups:
        code += [
            call(Helper.GET_CURRENT_CGROUP_ID),
            mov64_reg(R1, R0),
            *_one_of("cgroup", filters.cgroups, skip),
        ]
    if filters.followed_fd is not None:
        code += [
            mov64_reg(R1, pid_tgid),
            rsh64_imm(R1, 32),
            stxw(R10, key_slot, R1),
            ld_map_fd(R1, filters.followed_fd),
            mov64_reg(R2, R10),
            add64_imm(R2, key_slot),
            call(Helper.MAP_LOOKUP_ELEM),
            jeq_imm(R0, 0, skip),
        ]
    return code


def comm_filter(filters: Filters, comm_offset: int, skip: str) -> list[Item]:
    """Filter on the comm that bpf_get_current_comm() wrote at r10 + comm_offset into zeroed
    bytes, so a name compares as two 8-byte words. Clobbers r1 and r2."""
    if not filters.comms:
        return []
    code: list[Item] = []
    for index, comm in enumerate(filters.comms):
        padded = comm.ljust(COMM_SIZE, b"\0")
        other = f"comm_not_{index}"
        code += [
            ldxdw(R1, R10, comm_offset),
            ld_imm64(R2, int.from_bytes(padded[:8], "little")),
            jne_reg(R1, R2, other),
            ldxdw(R1, R10, comm_offset + 8),
            ld_imm64(R2, int.from_bytes(padded[8:], "little")),
            jeq_reg(R1, R2, "pass_comm"),
            label(other),
        ]
    return [*code, ja(skip), label("pass_comm")]
