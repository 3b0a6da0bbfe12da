"""The mount table of this process (/proc/self/mounts): where each filesystem is mounted."""

from __future__ import annotations

import os
import re

from .._files import read_text, under

MOUNTS = "/proc/self/mounts"
_OCTAL_ESCAPE = re.compile(r"\\([0-7]{3})")


def read_mounts(root: str | os.PathLike[str] = "/") -> list[tuple[str, str]]:
    """(mountpoint, fstype) for each mount, in mount order."""
    path = under(root, MOUNTS)
    return _parse_mounts(read_text(path, f"{path} does not exist"))


def _parse_mounts(text: str) -> list[tuple[str, str]]:
    """Return (mountpoint, fstype) for each line of a /proc/*/mounts file."""
    mounts = []
    for line in text.splitlines():
        parts = line.split()
        if len(parts) < 3:
            continue
        # The kernel escapes space, tab, newline and backslash in paths as \ooo.
        mountpoint = _OCTAL_ESCAPE.sub(lambda m: chr(int(m.group(1), 8)), parts[1])
        mounts.append((mountpoint, parts[2]))
    return mounts
