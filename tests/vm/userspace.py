"""An arm64 guest's userspace: Debian's arm64 Python and test tools, unpacked from their .debs.

An amd64 guest runs on the host's own root; an arm64 one cannot run the host's binaries, so
its root is a directory of the cache assembled through a private apt state for arm64 (the
host's dpkg architectures are never changed) and shared read-only over 9p. Made once; delete
it (CACHE/roots/NAME) to make it again.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

from debian_apt import PrivateApt
from harness_error import HarnessError, warn
from kernels import CACHE, Arch, cache_lock, scratch_dir

ROOTS = CACHE / "roots"
SUITE = "bookworm"
# What the live tests and the wheel proofs need: 67 packages with their dependencies, 17 MB.
PACKAGES = ("python3", "python3-pytest", "python3-pytest-timeout", "python3-hypothesis")
# The initramfs's shell too (a static one: the initramfs has no libc).
BUSYBOX = "busybox-static"
# pyroute2 is pure Python, from PyPI: Debian 12's 0.7.3 predates the API the tests use.
PYROUTE2 = "pyroute2==0.9.7"
DIST_PACKAGES = "usr/lib/python3/dist-packages"


def ensure_userspace(arch: Arch) -> Path | None:
    """The root the guest of ARCH runs on; None: the host's own."""
    if not arch.own_userspace:
        return None
    root = ROOTS / f"{SUITE}-{arch.debian}"
    if not root.is_dir():
        with cache_lock():
            if not root.is_dir():
                _build(root, arch)
    return root


def _build(root: Path, arch: Arch) -> None:
    apt = PrivateApt(CACHE / "apt" / root.name, (SUITE,), arch.debian)
    apt.update()
    debs = apt.download_with_dependencies([*PACKAGES, BUSYBOX])
    tmp = scratch_dir(root.parent, root.name)
    for deb in debs:
        proc = subprocess.run(
            ["dpkg-deb", "-x", str(deb), str(tmp)], capture_output=True, text=True, check=False
        )
        if proc.returncode != 0:
            raise HarnessError(f"dpkg-deb -x {deb} failed: {proc.stderr.strip()}")
    _add_pyroute2(tmp / DIST_PACKAGES)
    # /init runs the command through /usr/bin/env and /bin/sh; the rest of busybox's applets
    # are linked at boot (initramfs.py), where busybox itself can say which they are.
    (tmp / "bin" / "sh").symlink_to("busybox")
    (tmp / "usr" / "bin" / "env").symlink_to("../../bin/busybox")
    tmp.rename(root)
    warn(f"assembled the {arch.debian} userspace from {len(debs)} packages in {root}")


def _add_pyroute2(dist_packages: Path) -> None:
    with tempfile.TemporaryDirectory(prefix="rawtrace-vm-pip-") as download:
        command = [sys.executable, "-m", "pip", "download", "-q", "--no-deps", "-d", download]
        proc = subprocess.run([*command, PYROUTE2], capture_output=True, text=True, check=False)
        wheels = list(Path(download).glob("*.whl"))
        if proc.returncode != 0 or len(wheels) != 1:
            raise HarnessError(f"pip download {PYROUTE2} failed: {proc.stderr.strip()}")
        with zipfile.ZipFile(wheels[0]) as wheel:
            wheel.extractall(dist_packages)


def busybox_of(root: Path | None) -> Path:
    """The static busybox for the initramfs: the host's, or the userspace's own."""
    if root is not None:
        return root / "bin" / "busybox"
    return Path(shutil.which("busybox") or "/bin/busybox")
