"""Building blocks above single instructions: labels scoped to the fragment that defines them,
and the map helper calls every program makes.

A fragment is a function returning items. Its own labels are its business: `scoped` renames
them `<scope>/<label>`, so two fragments, or two uses of one, cannot collide. A jump to a label
the fragment does not define is its way out, and that label is passed in by the caller (never
assumed): `task_filters(filters, R7, key, skip)`.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace

from bpf_bytecode.asm import call, ld_map_fd, mov64_imm, mov64_reg, stack_addr
from bpf_bytecode.frame import StackOff
from bpf_bytecode.helpers import Helper
from bpf_bytecode.insn import Insn, Item, Label
from bpf_bytecode.opcodes import R1, R2, R3, R4, Reg

BPF_ANY = 0  # map update flag: create or replace
BPF_NOEXIST = 1  # map update flag: only create


def scoped(scope: str, fragment: Iterable[Item]) -> list[Item]:
    """The fragment with the labels it defines, and its jumps to them, renamed `scope/label`;
    jumps to labels it does not define stay as they are."""
    items = list(fragment)
    own = {item.name for item in items if isinstance(item, Label)}
    renamed: list[Item] = []
    for item in items:
        if isinstance(item, Label):
            renamed.append(Label(f"{scope}/{item.name}"))
        elif item.target is not None and item.target in own:
            renamed.append(replace(item, target=f"{scope}/{item.target}"))
        else:
            renamed.append(item)
    return renamed


def map_lookup(map_fd: int, key: StackOff) -> list[Insn]:
    """r0 = the value at the key on the stack, or NULL. Clobbers r1-r5."""
    return [
        ld_map_fd(R1, map_fd),
        *stack_addr(R2, key),
        call(Helper.MAP_LOOKUP_ELEM),
    ]


def map_update(map_fd: int, key: StackOff, value: StackOff | Reg, flags: int) -> list[Insn]:
    """map[key] = value, both on the stack, or the value where register `value` points (a map
    value); r0 = 0 or a negative errno. Clobbers r1-r5."""
    value_addr = [mov64_reg(R3, value)] if isinstance(value, Reg) else stack_addr(R3, value)
    return [
        ld_map_fd(R1, map_fd),
        *stack_addr(R2, key),
        *value_addr,
        mov64_imm(R4, flags),
        call(Helper.MAP_UPDATE_ELEM),
    ]


def map_delete(map_fd: int, key: StackOff) -> list[Insn]:
    """Delete the key on the stack from the map; r0 = 0 or a negative errno. Clobbers r1-r5."""
    return [
        ld_map_fd(R1, map_fd),
        *stack_addr(R2, key),
        call(Helper.MAP_DELETE_ELEM),
    ]
