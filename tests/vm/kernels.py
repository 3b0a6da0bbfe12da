"""The kernel list (tests/vm/kernels) and the cache of the kernels it names.

The cache holds the ABI each list line resolved to, the downloaded .debs and, per ABI, the
files a boot needs: vmlinuz, vmlinux and modules.cpio (layout in tests/vm/README).
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import json
import os
import re
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterable, Iterator
from pathlib import Path

from debian_apt import PrivateApt
from decompress import extract_vmlinux
from harness_error import HarnessError, warn
from initramfs import ROOT_MODULES, modules_cpio

KERNELS_FILE = Path(__file__).resolve().with_name("kernels")
CACHE = Path(os.environ.get("RAWTRACE_VM_CACHE", "/var/cache/rawtrace-vm"))
KERNEL_DIRS = CACHE / "kernels"  # one per ABI, complete once it has its name (by rename)

# A new point release is picked up at most this long after it reaches the mirror.
RESOLVE_TTL_S = 24 * 3600


@dataclasses.dataclass(frozen=True)
class Arch:
    """How a kernel line's machine boots (ARCH in tests/vm/kernels)."""

    debian: str  # Debian's name: amd64, arm64
    qemu: str
    qemu_machine: tuple[str, ...]
    console: str
    modules: tuple[str, ...]  # ROOT_MODULES and what this machine's serial ports need
    # The host's root serves amd64 guests; an arm64 guest gets a userspace of its own
    # (userspace.py).
    own_userspace: bool


ARCHES = {
    "amd64": Arch(
        "amd64", "qemu-system-x86_64", ("-cpu", "max"), "ttyS0", ROOT_MODULES, own_userspace=False
    ),
    # `virt` has one UART, so the command's streams go through virtio-serial ports. Plain
    # `max` emulates the QARMA pointer-authentication cipher that Debian's kernel runs on every
    # call, 3-4x slower than pauth-impdef's cheap one.
    "arm64": Arch(
        "arm64",
        "qemu-system-aarch64",
        ("-M", "virt", "-cpu", "max,pauth-impdef=on"),
        "ttyAMA0",
        (*ROOT_MODULES, "virtio_console"),
        own_userspace=True,
    ),
}


@dataclasses.dataclass(frozen=True)
class KernelEntry:
    name: str
    suites: tuple[str, ...]
    abi_pattern: str
    arch: Arch = ARCHES["amd64"]


def read_kernel_list() -> list[KernelEntry]:
    entries = []
    for lineno, raw in enumerate(KERNELS_FILE.read_text().splitlines(), 1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        fields = line.split()
        arch = fields[3] if len(fields) == 4 else "amd64"
        if len(fields) not in (3, 4) or arch not in ARCHES:
            raise HarnessError(
                f"{KERNELS_FILE}:{lineno}: expected NAME SUITES ABI [{'|'.join(ARCHES)}], "
                f"got {raw!r}"
            )
        name, suites, abi = fields[:3]
        entries.append(KernelEntry(name, tuple(suites.split(",")), abi, ARCHES[arch]))
    return entries


def find_kernel_entry(name: str) -> KernelEntry:
    entries = read_kernel_list()
    for entry in entries:
        if entry.name == name:
            return entry
    known = ", ".join(e.name for e in entries)
    raise HarnessError(f"unknown kernel {name!r}; {KERNELS_FILE} lists: {known}")


def _version_key(abi: str) -> tuple[tuple[int, int | str], ...]:
    """Compare ABIs by their numbers: 6.1.0-56 is newer than 6.1.0-9."""
    return tuple((0, int(p)) if p.isdigit() else (1, p) for p in re.findall(r"\d+|\D+", abi))


def newest_abi(names: Iterable[str], abi_pattern: str) -> str | None:
    pattern = re.compile(rf"linux-(?:image|binary)-({abi_pattern})")
    abis = {m[1] for m in map(pattern.fullmatch, names) if m}
    return max(abis, key=_version_key) if abis else None


def packages_for(abi: str, names: set[str]) -> list[str]:
    """The packages that hold ABI's kernel and modules.

    Up to 6.18 that is linux-image-ABI.  Later kernels are split into
    linux-binary-ABI and (from 7.2) linux-modules-ABI, and linux-image-ABI
    becomes a small meta package, so fetching all three that exist fits both.
    """
    kinds = ("image", "binary", "modules")
    return [p for p in (f"linux-{kind}-{abi}" for kind in kinds) if p in names]


@dataclasses.dataclass(frozen=True)
class Kernel:
    name: str
    abi: str
    directory: Path
    arch: Arch = ARCHES["amd64"]

    @property
    def vmlinuz(self) -> Path:
        return self.directory / "vmlinuz"

    @property
    def modules(self) -> Path:
        return self.directory / "modules.cpio"

    def boot_image(self) -> Path:
        """vmlinux for a PVH boot, made on first use; else the bzImage. arm64's vmlinuz is
        the (gzipped) Image, which QEMU boots as it is."""
        if self.arch.debian != "amd64":
            return self.vmlinuz
        vmlinux = self.directory / "vmlinux"
        if not vmlinux.exists():
            try:
                data = extract_vmlinux(self.vmlinuz.read_bytes())
            except ValueError as e:
                warn(f"booting the slower bzImage of {self.abi}: cannot extract vmlinux: {e}")
                return self.vmlinuz
            write_atomically(vmlinux, data)
        return vmlinux


def write_atomically(path: Path, data: bytes) -> None:
    """Readers see the old file or the whole new one, never a partial one."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    os.chmod(tmp, 0o644)
    os.replace(tmp, path)


def scratch_dir(parent: Path, name: str) -> Path:
    """An empty directory that becomes PARENT/NAME by a rename once complete."""
    parent.mkdir(parents=True, exist_ok=True)
    path = Path(tempfile.mkdtemp(dir=parent, prefix=f".{name}."))
    path.chmod(0o755)
    return path


def _remove_leftovers() -> None:
    """Scratch directories of runs that were killed; only called under the lock."""
    for path in (*CACHE.glob(".*"), *CACHE.glob("debs/.*"), *KERNEL_DIRS.glob(".*")):
        if path.is_dir():
            shutil.rmtree(path)


@contextlib.contextmanager
def cache_lock() -> Iterator[None]:
    """Serialises every cache writer; readers need none, as files appear by rename."""
    CACHE.mkdir(parents=True, exist_ok=True)
    with open(CACHE / "lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def _resolved_path(entry: KernelEntry) -> Path:
    return CACHE / "resolved" / f"{entry.name}.json"


def _cached_abi(entry: KernelEntry, max_age_s: float) -> str | None:
    """The ABI picked last time, if young enough, for the same list line, and built."""
    path = _resolved_path(entry)
    try:
        record = json.loads(path.read_text())
        age = time.time() - path.stat().st_mtime
    except (OSError, ValueError):
        return None
    fresh = age < max_age_s and record.get("line") == [list(entry.suites), entry.abi_pattern]
    abi = record.get("abi")
    return abi if fresh and isinstance(abi, str) and (KERNEL_DIRS / abi).is_dir() else None


def _first_existing(*paths: Path) -> Path | None:
    return next((p for p in paths if p.exists()), None)


def _build_kernel(abi: str, packages: list[str], apt: PrivateApt, arch: Arch) -> None:
    """Download PACKAGES into debs/ABI and build kernels/ABI from them."""
    _remove_leftovers()
    debs = CACHE / "debs" / abi
    if not debs.is_dir():
        tmp = scratch_dir(debs.parent, abi)
        apt.download(packages, tmp)
        tmp.rename(debs)
    tmp = scratch_dir(KERNEL_DIRS, abi)
    with tempfile.TemporaryDirectory(dir=CACHE, prefix=".extract.") as root:
        for deb in sorted(debs.glob("*.deb")):
            proc = subprocess.run(
                ["dpkg-deb", "-x", str(deb), root], capture_output=True, text=True, check=False
            )
            if proc.returncode != 0:
                raise HarnessError(f"dpkg-deb -x {deb} failed: {proc.stderr.strip()}")
        # The image moved from /boot to the modules directory in 7.x, and
        # that from /lib to /usr/lib with trixie's merged /usr.
        vmlinuz = _first_existing(
            Path(root, "boot", f"vmlinuz-{abi}"), Path(root, "usr/lib/modules", abi, "vmlinuz")
        )
        module_dir = _first_existing(
            Path(root, "lib/modules", abi, "kernel"), Path(root, "usr/lib/modules", abi, "kernel")
        )
        if vmlinuz is None or module_dir is None:
            raise HarnessError(f"no vmlinuz or modules for {abi} in {', '.join(packages)}")
        shutil.copyfile(vmlinuz, tmp / "vmlinuz")
        (tmp / "modules.cpio").write_bytes(modules_cpio(module_dir, arch.modules))
    tmp.rename(KERNEL_DIRS / abi)


def ensure_kernel(entry: KernelEntry) -> Kernel:
    """Resolve ENTRY to a kernel and make sure it is in the cache."""
    abi = _cached_abi(entry, RESOLVE_TTL_S)
    if abi is None:
        with cache_lock():
            abi = _cached_abi(entry, RESOLVE_TTL_S) or _resolve_and_build(entry)
    return Kernel(entry.name, abi, KERNEL_DIRS / abi, entry.arch)


def _resolve_and_build(entry: KernelEntry) -> str:
    start = time.monotonic()
    try:
        apt = PrivateApt(CACHE / "apt" / entry.name, entry.suites, entry.arch.debian)
        apt.update()
        names = apt.package_names("linux-")
        abi = newest_abi(names, entry.abi_pattern)
        if abi is None:
            raise HarnessError(
                f"no package linux-image-{entry.abi_pattern} in {','.join(entry.suites)}"
            )
        if not (KERNEL_DIRS / abi).is_dir():
            _build_kernel(abi, packages_for(abi, names), apt, entry.arch)
            warn(f"fetched and unpacked {abi} in {time.monotonic() - start:.1f} s")
    except HarnessError as e:
        stale = _cached_abi(entry, float("inf"))
        if stale is None:
            raise
        warn(f"using the cached kernel {stale}: cannot look for a newer one: {e}")
        return stale
    _resolved_path(entry).parent.mkdir(exist_ok=True)
    record = {"abi": abi, "line": [list(entry.suites), entry.abi_pattern]}
    write_atomically(_resolved_path(entry), json.dumps(record).encode())
    return abi
