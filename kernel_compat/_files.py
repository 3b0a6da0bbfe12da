"""Reading small files under a root prefix, with errors converted in one place."""

from __future__ import annotations

import os
from pathlib import Path

from .fact_errors import FeatureMissing, KernelFactError


def under(root: str | os.PathLike[str], absolute: str) -> Path:
    """Return `absolute` (an absolute path like "/proc/...") placed under `root`."""
    return Path(os.fspath(root)) / absolute.lstrip("/")


def read_text(path: Path, missing: str) -> str:
    """Read `path` as text; FeatureMissing(`missing`) if it does not exist."""
    try:
        # Kernel files are ASCII; "replace" keeps a stray byte from failing a whole read.
        with open(path, encoding="utf-8", errors="replace") as f:
            return f.read()
    except (FileNotFoundError, NotADirectoryError) as exc:
        raise FeatureMissing(missing) from exc
    except OSError as exc:
        raise KernelFactError(f"cannot read {path}: {exc.strerror or exc}") from exc


def parse_int(path: Path, text: str) -> int:
    """Parse a file holding one decimal integer, naming `path` on failure."""
    try:
        return int(text.strip())
    except ValueError as exc:
        raise KernelFactError(f"{path} does not hold an integer: {text.strip()!r}") from exc
