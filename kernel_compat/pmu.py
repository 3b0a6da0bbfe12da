"""Dynamic perf event sources (PMUs) under /sys/bus/event_source/devices."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass

from ._files import parse_int, read_text, under
from .fact_errors import FeatureMissing, KernelFactError

__all__ = ["PmuFormatField", "list_pmus", "pmu_format_bit", "pmu_format_field", "pmu_type"]

_DEVICES = "/sys/bus/event_source/devices"
# "config:0", "config:0-7", "config1:0-63"; several comma-separated ranges also exist
# (e.g. "config:0-7,32-35" on some CPU PMUs).
_FORMAT = re.compile(r"(config[0-9]*):([0-9]+(?:-[0-9]+)?(?:,[0-9]+(?:-[0-9]+)?)*)")


@dataclass(frozen=True)
class PmuFormatField:
    """Where a PMU format field lives: which perf_event_attr word and which bits."""

    config: str
    bits: tuple[int, ...]

    @property
    def first_bit(self) -> int:
        """The lowest bit of the field."""
        return self.bits[0]


def pmu_type(name: str, root: str | os.PathLike[str] = "/") -> int:
    """Return the perf_event_attr.type of PMU `name` (e.g. "kprobe", "uprobe")."""
    _check_name(name)
    path = under(root, f"{_DEVICES}/{name}/type")
    return parse_int(path, read_text(path, f"no PMU named {name!r} ({path} does not exist)"))


def pmu_format_field(name: str, field: str, root: str | os.PathLike[str] = "/") -> PmuFormatField:
    """Return format field `field` of PMU `name` (devices/<name>/format/<field>)."""
    _check_name(name)
    _check_name(field)
    path = under(root, f"{_DEVICES}/{name}/format/{field}")
    text = read_text(path, f"PMU {name!r} has no format field {field!r} ({path} does not exist)")
    try:
        return _parse_format_field(text)
    except ValueError as exc:
        raise KernelFactError(f"cannot parse {path}: {exc}") from exc


def pmu_format_bit(name: str, field: str, root: str | os.PathLike[str] = "/") -> int:
    """Return the bit of `config` that is the one-bit flag `field` (e.g. uprobe "retprobe")."""
    fmt = pmu_format_field(name, field, root)
    if fmt.config != "config" or len(fmt.bits) != 1:
        path = under(root, f"{_DEVICES}/{name}/format/{field}")
        raise KernelFactError(
            f"PMU {name!r} field {field!r} is not a single bit of config"
            f" ({path} says {fmt.config}:{_bits_text(fmt.bits)})"
        )
    return fmt.first_bit


def list_pmus(root: str | os.PathLike[str] = "/") -> dict[str, int]:
    """Return {PMU name: perf_event_attr.type} for every PMU with a readable type file."""
    devices = under(root, _DEVICES)
    try:
        names = sorted(entry.name for entry in os.scandir(devices))
    except FileNotFoundError as exc:
        raise FeatureMissing(f"{devices} does not exist (no perf events?)") from exc
    except OSError as exc:
        raise KernelFactError(f"cannot list {devices}: {exc.strerror or exc}") from exc
    pmus = {}
    for name in names:
        try:
            pmus[name] = pmu_type(name, root)
        except FeatureMissing:
            # Entries without a type file are not event sources we can open; skip them.
            continue
    return pmus


def _check_name(name: str) -> None:
    # Names are single path components; refuse anything that could walk elsewhere.
    if not name or "/" in name or name in (".", ".."):
        raise ValueError(f"invalid sysfs name {name!r}")


def _parse_format_field(text: str) -> PmuFormatField:
    """Parse a PMU format file like "config:0" or "config:32-63" into its bits."""
    match = _FORMAT.fullmatch(text.strip())
    if match is None:
        raise ValueError(f"unexpected format {text.strip()!r}")
    bits: list[int] = []
    for part in match.group(2).split(","):
        low, _, high = part.partition("-")
        first, last = int(low), int(high or low)
        if last < first or last > 63:
            raise ValueError(f"bad bit range {part!r}")
        bits.extend(range(first, last + 1))
    return PmuFormatField(match.group(1), tuple(bits))


def _bits_text(bits: tuple[int, ...]) -> str:
    return str(bits[0]) if len(bits) == 1 else f"{bits[0]}-{bits[-1]}"
