"""Errors raised by the kernel fact readers."""

from __future__ import annotations

__all__ = ["FeatureMissing", "KernelFactError"]


class KernelFactError(Exception):
    """A fact about the running kernel could not be read or understood."""


class FeatureMissing(KernelFactError):
    """The kernel lacks the feature, file or object asked about ("not supported").

    Callers test for this one class to decide on a fallback; any other
    KernelFactError means the fact exists but could not be read or parsed.
    """
