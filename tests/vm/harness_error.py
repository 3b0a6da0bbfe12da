"""How the harness reports its own failures, as opposed to the command's.

run and matrix exit 125 for them (tests/vm/README) and print the guest's console when there
is one, so a failed boot can be read without booting again.
"""

from __future__ import annotations

import sys

HARNESS_FAILURE = 125
INSTALL_HINT = (
    "apt-get install -y --no-install-recommends qemu-system-x86 busybox-static zstd"
    " (and qemu-system-arm for arm64 kernels)"
)


class HarnessError(Exception):
    """The harness, not the command, failed: exit 125 and show the console."""

    def __init__(self, message: str, console: str = "") -> None:
        super().__init__(message)
        self.console = console


def warn(message: str) -> None:
    print(f"rawtrace-vm: {message}", file=sys.stderr, flush=True)


def report_failure(error: HarnessError) -> int:
    """Print a harness failure the way run and matrix show it; return 125."""
    if error.console:
        sys.stderr.write(f"--- guest console ---\n{error.console}\n--- end of guest console ---\n")
    warn(str(error))
    return HARNESS_FAILURE
