"""The running kernel's build configuration (CONFIG_* options)."""

from __future__ import annotations

import gzip
import os
import re
import zlib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from types import MappingProxyType

from .._files import read_text, under
from ..fact_errors import KernelFactError
from .release import kernel_release

__all__ = ["KernelConfig", "kernel_config"]

_PROC_CONFIG = "/proc/config.gz"
_BOOT_CONFIG = "/boot/config-{release}"
# Kconfig escapes only backslash and double quote inside string values.
_ESCAPE = re.compile(r"\\(.)")


@dataclass(frozen=True, eq=False)
class KernelConfig(Mapping[str, str]):
    """CONFIG_* options mapped to "y", "m" or their value; unset options are absent.

    Lookups accept names with or without the CONFIG_ prefix; iteration yields full names.
    """

    options: Mapping[str, str]
    source: str = ""

    def __getitem__(self, name: str) -> str:
        return self.options[_full_name(name)]

    def __iter__(self) -> Iterator[str]:
        return iter(self.options)

    def __len__(self) -> int:
        return len(self.options)

    def enabled(self, name: str) -> bool:
        """Tell whether option `name` is built in ("y") or a module ("m")."""
        return self.options.get(_full_name(name)) in ("y", "m")


def kernel_config(root: str | os.PathLike[str] = "/", release: str | None = None) -> KernelConfig:
    """Read /proc/config.gz, else /boot/config-<release> (default: the running release)."""
    proc_path = under(root, _PROC_CONFIG)
    try:
        with gzip.open(proc_path, "rt", encoding="utf-8", errors="replace") as f:
            return _parse_config(f.read(), str(proc_path))
    except FileNotFoundError:
        pass  # CONFIG_IKCONFIG_PROC is off; distributions ship the file in /boot instead.
    except (OSError, EOFError, zlib.error) as exc:
        # gzip.BadGzipFile is an OSError; a truncated stream raises EOFError.
        raise KernelFactError(f"cannot read {proc_path}: {exc}") from exc
    if release is None:
        release = kernel_release(root).text
    boot_path = under(root, _BOOT_CONFIG.format(release=release))
    text = read_text(boot_path, f"no kernel config: neither {proc_path} nor {boot_path} exists")
    return _parse_config(text, str(boot_path))


def _full_name(name: str) -> str:
    return name if name.startswith("CONFIG_") else "CONFIG_" + name


def _parse_config(text: str, source: str = "") -> KernelConfig:
    """Parse .config text: "CONFIG_X=y", "CONFIG_X=\\"str\\"", "# CONFIG_X is not set"."""
    options: dict[str, str] = {}
    for line in text.splitlines():
        line = line.strip()
        if not line.startswith("CONFIG_"):
            # Comments, including "# CONFIG_X is not set", mean the option is absent.
            continue
        name, sep, value = line.partition("=")
        if not sep:
            continue
        if len(value) >= 2 and value[0] == value[-1] == '"':
            value = _ESCAPE.sub(r"\1", value[1:-1])
        elif value == "n":
            # Hand-edited configs may say =n; Kconfig itself writes "is not set".
            continue
        options[name] = value
    return KernelConfig(MappingProxyType(options), source)
