"""Where the running kernel's BTF lives, and reading it."""

from __future__ import annotations

import os
from pathlib import Path

from .._files import under
from ..fact_errors import FeatureMissing, KernelFactError
from .queries import Btf

__all__ = ["load_vmlinux_btf", "vmlinux_btf_path"]

# Present when the kernel is built with CONFIG_DEBUG_INFO_BTF (Linux 5.4+).
_VMLINUX_BTF = "/sys/kernel/btf/vmlinux"


def load_vmlinux_btf(root: str | os.PathLike[str] = "/") -> Btf:
    """Read and parse the running kernel's BTF (/sys/kernel/btf/vmlinux under `root`)."""
    path = vmlinux_btf_path(root)
    try:
        with open(path, "rb") as f:
            data = f.read()
    except FileNotFoundError as exc:
        raise FeatureMissing(f"{path} does not exist") from exc
    except OSError as exc:
        raise KernelFactError(f"cannot read {path}: {exc.strerror or exc}") from exc
    try:
        return Btf.from_bytes(data)
    except KernelFactError as exc:
        raise KernelFactError(f"cannot parse {path}: {exc}") from exc


def vmlinux_btf_path(root: str | os.PathLike[str] = "/") -> Path:
    """Return the path of the kernel's BTF blob (under `root`)."""
    path = under(root, _VMLINUX_BTF)
    if not path.is_file():
        raise FeatureMissing(f"{path} does not exist (kernel built without CONFIG_DEBUG_INFO_BTF)")
    return path
