"""Named, sized stack slots below r10, and the check that keeps them apart.

A Frame hands out slots downwards from r10, each aligned to its size (up to 8 bytes):

    frame = Frame("syscall")
    key = frame.slot("key", 8)        r10 -8 .. r10 -1
    zero = frame.slot("zero", 4)      r10 -12 .. r10 -9

Instructions that address the stack name their slot (`stxdw(R10, key, R7)`, a field of one with
`rec.at(16)`, a pointer to one with `stack_addr(R2, key)`), and the assembler checks every
program: each access stays inside its slot, and no two slots it uses overlap, unless one was
declared inside the other with `part` (bytes deliberately reused, e.g. by a program that has
no other use for them). Slots of different frames may meet in one program (a fragment taking
its caller's slots), and are held to the same check.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Union

STACK_SIZE = 512  # MAX_BPF_STACK


class FrameError(ValueError):
    """A frame that does not fit, or a slot that lies outside its parent."""


@dataclass(frozen=True)
class Slot:
    """`size` bytes at r10 + off (off < 0). `within`: the slot whose bytes it reuses."""

    name: str
    off: int
    size: int
    within: Slot | None = None

    @property
    def end(self) -> int:
        """One past its last byte, as an offset from r10."""
        return self.off + self.size

    def at(self, offset: int) -> StackRef:
        """The address `offset` bytes into the slot."""
        if not 0 <= offset < self.size:
            raise FrameError(f"offset {offset} is outside slot {self}")
        return StackRef(self, offset)

    def part(self, name: str, offset: int, size: int) -> Slot:
        """A slot of its own over `size` of this slot's bytes from `offset`: a declared reuse."""
        if offset < 0 or offset + size > self.size:
            raise FrameError(f"{name} ({offset}+{size}) does not fit in slot {self}")
        return Slot(f"{self.name}.{name}", self.off + offset, size, self)

    def contains(self, other: Slot) -> bool:
        """Whether `other` was declared inside this slot, directly or not."""
        parent = other.within
        while parent is not None:
            if parent == self:
                return True
            parent = parent.within
        return False

    def __str__(self) -> str:
        return f"{self.name!r} (r10 {self.off:+d}, {self.size} bytes)"


@dataclass(frozen=True)
class StackRef:
    """An address inside a slot: r10 + slot.off + offset."""

    slot: Slot
    offset: int = 0

    @property
    def off(self) -> int:
        return self.slot.off + self.offset


StackOff = Union[int, Slot, StackRef]
"""What a memory instruction takes as its offset: a raw one, or a slot (or a place in one)."""


def stack_ref(where: StackOff) -> tuple[int, Slot | None]:
    """The raw offset from r10, and the slot it lies in when it names one."""
    if isinstance(where, Slot):
        return where.off, where
    if isinstance(where, StackRef):
        return where.off, where.slot
    return where, None


class Frame:
    """A program's stack: slots handed out downwards from r10, in the order they are asked for."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.size = 0  # bytes below r10 taken so far
        self.slots: list[Slot] = []

    def slot(self, name: str, size: int) -> Slot:
        """The next `size` bytes down, aligned to the size (1, 2, 4 or 8 bytes, 8 beyond)."""
        if size <= 0:
            raise FrameError(f"slot {name!r} of {self.name} has {size} bytes")
        align = min(8, 1 << (size - 1).bit_length())
        bottom = -(-(self.size + size) // align) * align
        if bottom > STACK_SIZE:
            raise FrameError(f"slot {name!r} of {self.name} ends {bottom} bytes down, past 512")
        self.size = bottom
        slot = Slot(f"{self.name}.{name}", -bottom, size)
        self.slots.append(slot)
        return slot


def check_slots(uses: Iterable[tuple[int, Slot, int, int]]) -> str | None:
    """The first fault among stack accesses, each (instruction index, slot, first byte, end),
    offsets from r10: an access outside its slot, or two slots that overlap with neither
    declared inside the other. None when there is none."""
    first_use: dict[Slot, int] = {}
    for index, slot, start, end in uses:
        if start < slot.off or end > slot.end:
            return f"instruction {index}: bytes r10 {start:+d}..{end:+d} are outside slot {slot}"
        first_use.setdefault(slot, index)
    slots = list(first_use)
    for i, one in enumerate(slots):
        for other in slots[i + 1 :]:
            apart = one.end <= other.off or other.end <= one.off
            if apart or one.contains(other) or other.contains(one):
                continue
            return (
                f"slot {one} (instruction {first_use[one]}) overlaps slot {other} "
                f"(instruction {first_use[other]})"
            )
    return None
