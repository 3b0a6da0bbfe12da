"""What a syscall event keeps from its call's entry: the syscall's arguments, and the strings
they point to, read while the caller's memory still holds them (a successful execve replaces it).

Where the arguments are depends on the attach family, which describes it with a SyscallArgs;
load_args copies the first few onto the stack as u64s. A Capture then writes the event's *tail*,
the bytes its record carries after the fixed context (record.py):

    raw args     arg_count u64s, in the syscall's order
    then the Capture's fields, in order:
    FirstU64     the u64 the first arg points to: clone3's cl_args->flags, read at entry
        +0     u64    the value, 0 where the read faulted
        +8     u64    1: read, 0: unavailable
    UserString   a string arg
        +0     u32    flags: TRUNCATED_PATH, UNAVAILABLE_PATH
        +4     u32    0
        +8     length bytes, NUL-terminated
    ExecStrings  execve's strings
        +0     u32    argc: how many argv strings follow
        +4     u32    flags: TRUNCATED_PATH | TRUNCATED_ARG | TRUNCATED_ARGV, and
                      UNAVAILABLE_PATH | UNAVAILABLE_ARGV where a read faulted
        +8     PATH_SIZE bytes      the pathname, NUL-terminated
        +264   ARGV_MAX slots of ARG_SIZE bytes: argv[0], argv[1], ..., each NUL-terminated

The tail is bigger than the 512-byte stack, so it is built in a per-CPU array value (`out`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Union

from bpf_bytecode.asm import (
    add64_imm,
    and64_imm,
    call,
    ja,
    jeq_imm,
    jne_imm,
    jset_imm,
    jsge_imm,
    label,
    ldxb,
    ldxdw,
    ldxw,
    mov64_imm,
    mov64_reg,
    or64_imm,
    stack_addr,
    stdw,
    stw,
    stxdw,
    stxw,
)
from bpf_bytecode.fragments import scoped
from bpf_bytecode.frame import Slot
from bpf_bytecode.helpers import Helper
from bpf_bytecode.insn import Item
from bpf_bytecode.opcodes import R0, R1, R2, R3, R6, R10, Reg
from bpf_bytecode.programs import OUT

MAX_ARGS = 6  # a syscall has at most six

PATH_SIZE = 256
ARGV_MAX = 16
ARG_SIZE = 128
STRINGS_SIZE = 8 + PATH_SIZE + ARGV_MAX * ARG_SIZE
TRUNCATED_PATH = 1  # the pathname did not fit its PATH_SIZE bytes
TRUNCATED_ARG = 2  # an argv string did not fit its ARG_SIZE bytes
TRUNCATED_ARGV = 4  # argv has more than ARGV_MAX strings
TRUNCATED = TRUNCATED_PATH | TRUNCATED_ARG | TRUNCATED_ARGV
# A read that faulted: the entry cannot fault in a page the caller never touched (a string
# literal in a fresh vfork child, say). sched_process_exec puts the kernel's copy in its place
# after a successful exec (exec_facts.py); after a failed one the value stays unavailable.
UNAVAILABLE_PATH = 8
UNAVAILABLE_ARGV = 16


@dataclass(frozen=True)
class ArgsInContext:
    """The args are u64s in the program's context: the fields of a syscalls:sys_enter_*
    tracepoint (each 8 bytes, whatever its C type)."""

    offsets: tuple[int, ...]


@dataclass(frozen=True)
class ArgsInUserRegs:
    """The args are in the user pt_regs the syscall was entered with, whose address is the u64
    at `regs_at` in the context: raw sys_enter's first argument, or the single argument (di on
    x86_64) of a kprobed __x64_sys_* wrapper. `offsets` are the syscall's argument registers in
    pt_regs; the verifier cannot see into that pointer, so each is read with `probe_read`."""

    regs_at: int
    offsets: tuple[int, ...]
    probe_read: Helper


SyscallArgs = Union[ArgsInContext, ArgsInUserRegs]


def load_args(where: SyscallArgs, count: int, dst: Slot) -> list[Item]:
    """Store the syscall's first `count` args as u64s in slot `dst`. Context in r6; clobbers
    r0-r5. A fault leaves the helper's zeroes."""
    if count > len(where.offsets):
        raise ValueError(f"{count} args asked for, {len(where.offsets)} known")
    code: list[Item] = []
    for i, offset in enumerate(where.offsets[:count]):
        if isinstance(where, ArgsInContext):
            code += [ldxdw(R1, R6, offset), stxdw(R10, dst.at(8 * i), R1)]
        else:
            code += [
                *stack_addr(R1, dst.at(8 * i)),
                mov64_imm(R2, 8),
                ldxdw(R3, R6, where.regs_at),
                add64_imm(R3, offset),
                call(where.probe_read),
            ]
    return code


@dataclass(frozen=True)
class CaptureFrame:
    """Where a capture finds and puts things: the args in slot `args` (u64s), two 8-byte stack
    slots of its own (`slot`, `byte`), and the tail at `out` + at."""

    args: Slot
    slot: Slot
    byte: Slot
    out: Reg
    at: int


FIRST_U64_SIZE = 16  # the value, then whether it was read


@dataclass(frozen=True)
class FirstU64:
    """The u64 the first arg points to (clone3's cl_args->flags): FIRST_U64_SIZE bytes."""

    @property
    def size(self) -> int:
        return FIRST_U64_SIZE

    def build(self, frame: CaptureFrame, at: int) -> list[Item]:
        """out + at = the u64 at the user address in the first arg, then 1 if it was read."""
        return scoped(
            "first_u64",
            [
                stdw(frame.out, at + 8, 0),
                mov64_reg(R1, frame.out),
                add64_imm(R1, at),
                mov64_imm(R2, 8),
                ldxdw(R3, R10, frame.args.at(0)),
                call(Helper.PROBE_READ_USER),  # zeroes the value on a fault
                jne_imm(R0, 0, "unread"),
                stdw(frame.out, at + 8, 1),
                label("unread"),
            ],
        )


@dataclass(frozen=True)
class ExecStrings:
    """execve's pathname and argv, from the args `path_arg` and `argv_arg`: the block of
    STRINGS_SIZE bytes drawn above."""

    path_arg: int
    argv_arg: int

    @property
    def size(self) -> int:
        return STRINGS_SIZE

    def build(self, frame: CaptureFrame, at: int) -> list[Item]:
        return _exec_strings(self, frame, at)


@dataclass(frozen=True)
class UserString:
    """The user string arg `arg` points to (with `kernel`, a kernel function's string arg):
    u32 flags (TRUNCATED_PATH, UNAVAILABLE_PATH), u32 0, then `length` bytes with its NUL."""

    arg: int
    length: int
    kernel: bool = False

    @property
    def size(self) -> int:
        return 8 + self.length

    def build(self, frame: CaptureFrame, at: int) -> list[Item]:
        src = frame.args.part(f"string{self.arg}", 8 * self.arg, 8)
        return [
            stdw(frame.out, at, 0),
            *_read_str(
                frame, at + 8, self.length, src, at, _PATH_FLAGS, f"string{self.arg}", self.kernel
            ),
        ]


CaptureField = Union[FirstU64, ExecStrings, UserString]


@dataclass(frozen=True)
class Capture:
    """An event's tail: `arg_count` raw args, then `fields` in order."""

    arg_count: int = 0
    fields: tuple[CaptureField, ...] = ()

    @property
    def size(self) -> int:
        return 8 * self.arg_count + sum(field.size for field in self.fields)

    def offset_of(self, kind: type[CaptureField]) -> int | None:
        """Where the first field of `kind` lies in the tail; None without one."""
        at = 8 * self.arg_count
        for field in self.fields:
            if isinstance(field, kind):
                return at
            at += field.size
        return None

    def build(self, frame: CaptureFrame) -> list[Item]:
        """Write the tail. Clobbers r0-r5; `frame.out` must be one of r6-r9."""
        code: list[Item] = []
        for i in range(self.arg_count):
            code += [
                ldxdw(R1, R10, frame.args.at(8 * i)),
                stxdw(frame.out, frame.at + 8 * i, R1),
            ]
        at = frame.at + 8 * self.arg_count
        for field in self.fields:
            code += field.build(frame, at)
            at += field.size
        return code


def set_flag(out: Reg, flags: int, flag: int) -> list[Item]:
    """The u32 at out + flags |= flag. Clobbers r1."""
    return [ldxw(R1, out, flags), or64_imm(R1, flag), stxw(out, flags, R1)]


def _read_str(
    frame: CaptureFrame,
    dst: int,
    size: int,
    src: Slot,
    flags: int,
    cut: tuple[int, int],
    name: str,
    kernel: bool = False,
) -> list[Item]:
    """out + dst = the user string at *(u64 *)src, at most `size` bytes with its NUL; a
    string that fills them is checked at its last byte: not NUL means it was cut. `cut` is
    (the flag set in the u32 at out + flags when it was cut, the one set when it faulted).
    With `kernel`, the string is in kernel memory."""
    truncated, unavailable = cut
    read_str = Helper.PROBE_READ_KERNEL_STR if kernel else Helper.PROBE_READ_USER_STR
    read = Helper.PROBE_READ_KERNEL if kernel else Helper.PROBE_READ_USER
    return scoped(
        name,
        [
            mov64_reg(R1, frame.out),
            add64_imm(R1, dst),
            mov64_imm(R2, size),
            ldxdw(R3, R10, src),
            call(read_str),
            jsge_imm(R0, 0, "read"),
            *set_flag(frame.out, flags, unavailable),
            ja("whole"),
            label("read"),
            # the length with its NUL; only a string that filled the slot may have been cut
            jne_imm(R0, size, "whole"),
            *stack_addr(R1, frame.byte),
            mov64_imm(R2, 1),
            ldxdw(R3, R10, src),
            add64_imm(R3, size - 1),
            call(read),
            ldxb(R1, R10, frame.byte),
            jeq_imm(R1, 0, "whole"),
            *set_flag(frame.out, flags, truncated),
            label("whole"),
        ],
    )


_PATH_FLAGS = (TRUNCATED_PATH, UNAVAILABLE_PATH)
_ARG_FLAGS = (TRUNCATED_ARG, UNAVAILABLE_ARGV)


def _exec_strings(strings: ExecStrings, frame: CaptureFrame, at: int) -> list[Item]:
    """argc, truncated, the pathname and up to ARGV_MAX argv strings, at out + at.

    The argv loop is unrolled: bounded loops need 5.3, and each pass is a few instructions.
    """
    out, flags = frame.out, at + 4
    path = frame.args.part("path", 8 * strings.path_arg, 8)
    argv = frame.args.part("argv", 8 * strings.argv_arg, 8)
    code: list[Item] = [
        stw(out, at, 0),
        stw(out, flags, 0),
        *_read_str(frame, at + 8, PATH_SIZE, path, flags, _PATH_FLAGS, "path"),
        # a NULL argv is an empty one (the kernel accepts it), not a fault
        ldxdw(R1, R10, argv),
        jeq_imm(R1, 0, "argv_end"),
    ]
    for i in range(ARGV_MAX + 1):
        code += [
            # slot = argv[i], a user pointer; NULL (or a fault: argv unavailable) ends argv.
            # The pass after the last slot only asks whether more strings follow.
            *stack_addr(R1, frame.slot),
            mov64_imm(R2, 8),
            ldxdw(R3, R10, argv),
            add64_imm(R3, 8 * i),
            call(Helper.PROBE_READ_USER),
            jne_imm(R0, 0, "argv_end" if i == ARGV_MAX else "argv_fault"),
            ldxdw(R1, R10, frame.slot),
            jeq_imm(R1, 0, "argv_end"),
        ]
        if i == ARGV_MAX:
            code += set_flag(out, flags, TRUNCATED_ARGV)
            break
        dst = at + 8 + PATH_SIZE + i * ARG_SIZE
        code += [
            *_read_str(frame, dst, ARG_SIZE, frame.slot, flags, _ARG_FLAGS, f"arg{i}"),
            stw(out, at, i + 1),
        ]
    return scoped(
        "exec_strings",
        [
            *code,
            ja("argv_end"),
            label("argv_fault"),
            *set_flag(out, flags, UNAVAILABLE_ARGV),
            label("argv_end"),
        ],
    )


# Which clone (or clone3) calls stand in for a syscall the architecture lacks: arm64's vfork
# is clone(CLONE_VM | CLONE_VFORK), its fork a clone without CLONE_VM or CLONE_THREAD.
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
