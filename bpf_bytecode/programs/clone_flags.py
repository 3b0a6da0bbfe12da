"""Which clone (or clone3) calls stand in for a syscall the architecture lacks: arm64's vfork
is clone(CLONE_VM | CLONE_VFORK), its fork a clone without CLONE_VM or CLONE_THREAD."""

from __future__ import annotations

from dataclasses import dataclass

from bpf_bytecode.asm import and64_imm, call, jne_imm, jset_imm, ldxdw, mov64_imm, stack_addr
from bpf_bytecode.frame import Slot
from bpf_bytecode.helpers import Helper
from bpf_bytecode.insn import Item
from bpf_bytecode.opcodes import R0, R1, R2, R3, R10
from bpf_bytecode.programs import OUT
from bpf_bytecode.programs.capture import SyscallArgs, load_args

CLONE_VM, CLONE_THREAD = 0x100, 0x10000


@dataclass(frozen=True)
class CloneFlags:
    """The clone calls an event counts: those whose flags have all of `required` and none of
    `forbidden`. clone3's flags are cl_args->flags, in user memory (`in_struct`)."""

    required: int = 0
    forbidden: int = 0
    in_struct: bool = False


def clone_flags_check(
    only: CloneFlags, args: SyscallArgs, args_slot: Slot, scratch: Slot
) -> list[Item]:
    """At entry, context in r6: goto OUT unless the call's flags are what `only` counts. The
    first arg goes to `args_slot`, clone3's flags through `scratch` (8 bytes). Clobbers
    r0-r5."""
    read = [*load_args(args, 1, args_slot), ldxdw(R1, R10, args_slot.at(0))]
    if only.in_struct:
        read = [
            *load_args(args, 1, args_slot),
            *stack_addr(R1, scratch),
            mov64_imm(R2, 8),
            ldxdw(R3, R10, args_slot.at(0)),
            call(Helper.PROBE_READ_USER),
            jne_imm(R0, 0, OUT),
            ldxdw(R1, R10, scratch),
        ]
    required = [and64_imm(R1, only.required), jne_imm(R1, only.required, OUT)]
    return [
        *read,
        *([jset_imm(R1, only.forbidden, OUT)] if only.forbidden else []),
        *(required if only.required else []),
    ]
