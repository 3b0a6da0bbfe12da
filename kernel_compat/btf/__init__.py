"""The kernel's own BTF type information: the blob's layout (blob), lookups and member layouts
(queries), and where the running kernel keeps it (vmlinux)."""

from __future__ import annotations

from .blob import BtfKind
from .queries import Btf, Member
from .vmlinux import load_vmlinux_btf, vmlinux_btf_path

__all__ = ["Btf", "BtfKind", "Member", "load_vmlinux_btf", "vmlinux_btf_path"]
