"""What tests/packaging/test_wheel.py still imports by the old name: the host's Debian mirror.

The harness itself is split by job (debian_apt, kernels, initramfs, guest, ...); this goes
once test_wheel.py imports debian_apt.
"""

from __future__ import annotations

from debian_apt import mirror_for

__all__ = ["mirror_for"]
