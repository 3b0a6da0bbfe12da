"""Where the kernel exposes its own BTF type information."""

from __future__ import annotations

import os
from pathlib import Path

from ._files import under
from .errors import FeatureMissing

__all__ = ["vmlinux_btf_path"]

# Present when the kernel is built with CONFIG_DEBUG_INFO_BTF (Linux 5.4+).
_VMLINUX_BTF = "/sys/kernel/btf/vmlinux"


def vmlinux_btf_path(root: str | os.PathLike[str] = "/") -> Path:
    """Return the path of the kernel's BTF blob (under `root`)."""
    path = under(root, _VMLINUX_BTF)
    if not path.is_file():
        raise FeatureMissing(f"{path} does not exist (kernel built without CONFIG_DEBUG_INFO_BTF)")
    return path
