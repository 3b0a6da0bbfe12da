"""The running kernel's release string and version numbers."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass

from .._files import read_text, under
from ..fact_errors import KernelFactError

__all__ = ["KernelRelease", "boot_id", "kernel_release"]

_OSRELEASE = "/proc/sys/kernel/osrelease"
# Distribution suffixes vary ("-46-amd64", "-rc3", ".el7.x86_64", "+"); only the leading
# numbers order kernels.
_VERSION = re.compile(r"([0-9]+)\.([0-9]+)(?:\.([0-9]+))?")


@dataclass(frozen=True)
class KernelRelease:
    """A kernel release: the full text and its (major, minor, patch) numbers.

    Ordering operators compare `version` with another KernelRelease or a tuple,
    padding a shorter tuple with zeros: `release >= (5, 8)`. `==` compares whole
    releases (text too), never a release with a tuple.
    """

    text: str
    version: tuple[int, int, int]

    def at_least(self, major: int, minor: int = 0, patch: int = 0) -> bool:
        """Tell whether this release is `major.minor.patch` or newer."""
        return self.version >= (major, minor, patch)

    @property
    def code(self) -> int:
        """LINUX_VERSION_CODE, as bpf_attr.kern_version wants it (patch clamped to 255)."""
        major, minor, patch = self.version
        # 4.9.256 overflowed the patch byte; "kbuild: clamp SUBLEVEL to 255" (5.11) fixed it.
        return (major << 16) + (minor << 8) + min(patch, 255)

    def _other(self, other: object) -> tuple[int, ...] | None:
        if isinstance(other, KernelRelease):
            return other.version
        if isinstance(other, tuple) and all(isinstance(x, int) for x in other):
            return tuple(other) + (0,) * (3 - len(other))
        return None

    def __lt__(self, other: KernelRelease | tuple[int, ...]) -> bool:
        theirs = self._other(other)
        return NotImplemented if theirs is None else self.version < theirs

    def __le__(self, other: KernelRelease | tuple[int, ...]) -> bool:
        theirs = self._other(other)
        return NotImplemented if theirs is None else self.version <= theirs

    def __gt__(self, other: KernelRelease | tuple[int, ...]) -> bool:
        theirs = self._other(other)
        return NotImplemented if theirs is None else self.version > theirs

    def __ge__(self, other: KernelRelease | tuple[int, ...]) -> bool:
        theirs = self._other(other)
        return NotImplemented if theirs is None else self.version >= theirs

    def __str__(self) -> str:
        return self.text


def kernel_release(root: str | os.PathLike[str] = "/") -> KernelRelease:
    """Return the running kernel's release, from /proc/sys/kernel/osrelease."""
    path = under(root, _OSRELEASE)
    text = read_text(path, f"{path} does not exist")
    try:
        return _parse_release(text)
    except ValueError as exc:
        raise KernelFactError(f"cannot parse {path}: {exc}") from exc


def _parse_release(text: str) -> KernelRelease:
    """Parse a release string like "6.1.0-56-cloud-amd64" or "7.2.0-rc3"."""
    release = text.strip()
    match = _VERSION.match(release)
    if match is None:
        raise ValueError(f"no version number in {release!r}")
    major, minor, patch = match.group(1), match.group(2), match.group(3) or "0"
    return KernelRelease(release, (int(major), int(minor), int(patch)))


_BOOT_ID = "/proc/sys/kernel/random/boot_id"


def boot_id(root: str | os.PathLike[str] = "/") -> str:
    """A UUID the kernel draws at every boot: facts about this kernel keyed by it stay true
    until the next boot."""
    path = under(root, _BOOT_ID)
    return read_text(path, f"{path} does not exist").strip()
