"""ELF64, just enough to read a module's .modinfo, vmlinux's PVH note and busybox's interpreter."""

from __future__ import annotations

import struct
from collections.abc import Iterator

PT_INTERP = 3
PT_NOTE = 4
XEN_ELFNOTE_PHYS32_ENTRY = 18


def _check_elf64(data: bytes) -> None:
    if data[:4] != b"\x7fELF" or data[4] != 2 or data[5] != 1:
        raise ValueError("not a little-endian ELF64 file")


def elf_segments(data: bytes) -> Iterator[tuple[int, bytes]]:
    _check_elf64(data)
    (phoff,) = struct.unpack_from("<Q", data, 0x20)
    phentsize, phnum = struct.unpack_from("<HH", data, 0x36)
    for i in range(phnum):
        p_type, _, p_offset, _, _, p_filesz = struct.unpack_from(
            "<IIQQQQ", data, phoff + i * phentsize
        )
        yield p_type, data[p_offset : p_offset + p_filesz]


def elf_section(data: bytes, wanted: str) -> bytes:
    _check_elf64(data)
    (shoff,) = struct.unpack_from("<Q", data, 0x28)
    shentsize, shnum, shstrndx = struct.unpack_from("<HHH", data, 0x3A)

    def header(i: int) -> tuple[int, int, int]:
        """sh_name, sh_offset and sh_size of section I."""
        base = shoff + i * shentsize
        (name,) = struct.unpack_from("<I", data, base)
        offset, size = struct.unpack_from("<QQ", data, base + 0x18)
        return name, offset, size

    _, strtab, _ = header(shstrndx)
    for i in range(shnum):
        name, offset, size = header(i)
        if data[strtab + name : data.index(b"\0", strtab + name)] == wanted.encode():
            return data[offset : offset + size]
    return b""


def has_pvh_note(vmlinux: bytes) -> bool:
    """QEMU boots an ELF kernel only through PVH, which needs this Xen note."""
    for p_type, notes in elf_segments(vmlinux):
        pos = 0
        while p_type == PT_NOTE and pos + 12 <= len(notes):
            namesz, descsz, n_type = struct.unpack_from("<III", notes, pos)
            if (
                notes[pos + 12 : pos + 12 + namesz] == b"Xen\0"
                and n_type == XEN_ELFNOTE_PHYS32_ENTRY
            ):
                return True
            pos += 12 + (namesz + 3) // 4 * 4 + (descsz + 3) // 4 * 4
    return False
