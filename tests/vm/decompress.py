"""The kernel's compressed files made plain: vmlinuz's payload and compressed modules.

QEMU boots the plain ELF vmlinux through PVH about twice as fast as it lets the bzImage
decompress itself under TCG, and busybox insmod cannot read compressed modules.
"""

from __future__ import annotations

import gzip
import lzma
import shutil
import struct
import subprocess
import zlib
from pathlib import Path

from elf import has_pvh_note
from harness_error import INSTALL_HINT


def _zstd_decompress(data: bytes) -> bytes:
    # Python has no zstd module before 3.14.
    if shutil.which("zstd") is None:
        raise ValueError(f"zstd is not installed ({INSTALL_HINT})")
    proc = subprocess.run(["zstd", "-dcq"], input=data, capture_output=True, check=False)
    if proc.returncode != 0:
        raise ValueError(f"zstd: {proc.stderr.decode(errors='replace').strip()}")
    return proc.stdout


def extract_vmlinux(bzimage: bytes) -> bytes:
    """Decompress the payload that the x86 boot header points at."""
    if bzimage[0x202:0x206] != b"HdrS":
        raise ValueError("no x86 boot header")
    setup_sects = bzimage[0x1F1] or 4
    payload_offset, payload_length = struct.unpack_from("<II", bzimage, 0x248)
    start = (setup_sects + 1) * 512 + payload_offset
    payload = bzimage[start : start + payload_length]
    if payload.startswith(b"\x1f\x8b"):
        vmlinux = zlib.decompressobj(wbits=31).decompress(payload)
    elif payload.startswith(b"\xfd7zXZ\x00"):
        vmlinux = lzma.LZMADecompressor(lzma.FORMAT_XZ).decompress(payload)
    elif payload.startswith(b"\x28\xb5\x2f\xfd"):
        # The last 4 bytes are the size that the kernel build appends; zstd
        # rejects them as a truncated frame.
        vmlinux = _zstd_decompress(payload[:-4])
    else:
        raise ValueError(f"unsupported payload compression (magic {payload[:6].hex()})")
    if not has_pvh_note(vmlinux):
        raise ValueError("the kernel has no PVH entry point")
    return vmlinux


def read_module(path: Path) -> bytes:
    """The .ko bytes; busybox insmod cannot read compressed modules."""
    data = path.read_bytes()
    if path.name.endswith(".ko.xz"):
        return lzma.decompress(data)
    if path.name.endswith(".ko.gz"):
        return gzip.decompress(data)
    if path.name.endswith(".ko.zst"):
        return _zstd_decompress(data)
    return data
