"""Filters compiled into the programs, so that a filtered-out call never reaches a ring.

Kinds combine with AND; the values of one kind with OR. Each kind is a short run of compares:

    r1 = <the task's value>
    if r1 == <value 1> goto <kind>/pass
    if r1 == <value 2> goto <kind>/pass
    goto <skip>
  <kind>/pass:

A followed process tree is a hash map of tgids that the fork tracker fills (see follow.py).
"""

from __future__ import annotations

from dataclasses import dataclass

from bpf_bytecode.asm import (
    call,
    ja,
    jeq_imm,
    jeq_reg,
    jne_reg,
    label,
    ld_imm64,
    ldxdw,
    mov32_reg,
    mov64_reg,
    rsh64_imm,
    stxw,
)
from bpf_bytecode.fragments import map_lookup, scoped
from bpf_bytecode.frame import Slot, StackOff
from bpf_bytecode.helpers import Helper
from bpf_bytecode.insn import Item
from bpf_bytecode.opcodes import R0, R1, R2, R10, Reg

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
    """r1 holds the task's value: go on if it is one of `values`, else to `skip`. Clobbers r2."""
    code: list[Item] = []
    for value in values:
        if -(1 << 31) <= value < (1 << 31):
            code.append(jeq_imm(R1, value, "pass"))
        else:  # an immediate is sign-extended from 32 bits: wider values need a register
            code += [ld_imm64(R2, value), jeq_reg(R1, R2, "pass")]
    return scoped(f"filter_{kind}", [*code, ja(skip), label("pass")])


def task_filters(filters: Filters, pid_tgid: Reg, key: StackOff, skip: str) -> list[Item]:
    """Filters on who the task is. `pid_tgid` holds bpf_get_current_pid_tgid() and must
    survive calls (r6-r9); `key` is 4 free stack bytes. Clobbers r0-r5."""
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
            stxw(R10, key, R1),
            *map_lookup(filters.followed_fd, key),
            jeq_imm(R0, 0, skip),
        ]
    return code


def comm_filter(filters: Filters, comm: Slot, skip: str) -> list[Item]:
    """Filter on the comm that bpf_get_current_comm() wrote into the zeroed COMM_SIZE bytes of
    slot `comm`, so a name compares as two 8-byte words. Clobbers r1 and r2."""
    if not filters.comms:
        return []
    code: list[Item] = []
    for index, name in enumerate(filters.comms):
        padded = name.ljust(COMM_SIZE, b"\0")
        code += [
            ldxdw(R1, R10, comm.at(0)),
            ld_imm64(R2, int.from_bytes(padded[:8], "little")),
            jne_reg(R1, R2, f"not_{index}"),
            ldxdw(R1, R10, comm.at(8)),
            ld_imm64(R2, int.from_bytes(padded[8:], "little")),
            jeq_reg(R1, R2, "pass"),
            label(f"not_{index}"),
        ]
    return scoped("filter_comm", [*code, ja(skip), label("pass")])
