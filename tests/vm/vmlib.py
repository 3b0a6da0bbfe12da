"""Boot a Debian kernel in QEMU with the host root and run one command in it.

The library behind tests/vm/run and tests/vm/matrix (see tests/vm/README).  The
guest shares the host's / read-only over 9p, puts a RAM overlay on top so the
whole tree is writable, chroots into it and runs the command.  Its stdout and
stderr come back on two serial ports, its exit status on a third; the kernel
console goes to the first and is only shown when something fails.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import fcntl
import gzip
import json
import lzma
import os
import re
import shlex
import shutil
import struct
import subprocess
import sys
import tarfile
import tempfile
import time
import zlib
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import BinaryIO, NoReturn

HERE = Path(__file__).resolve().parent
KERNELS_FILE = HERE / "kernels"
CACHE = Path(os.environ.get("RAWTRACE_VM_CACHE", "/var/cache/rawtrace-vm"))

HARNESS_FAILURE = 125
INSTALL_HINT = "apt-get install -y --no-install-recommends qemu-system-x86 busybox-static zstd"

# A new point release is picked up at most this long after it reaches the mirror.
RESOLVE_TTL_S = 24 * 3600

# What the guest needs beyond the kernel image; their dependencies are found
# through modinfo.  A module with no .ko file is taken to be built in (virtio
# is, from 6.12 on).
ROOT_MODULES = ("virtio_pci", "9pnet_virtio", "9p", "overlay")

# Host variables the command sees, on top of PATH and HOME; plus RAWTRACE_*.
PASSED_ENV = (
    "CI",
    "LANG",
    "LC_ALL",
    "PYTEST_ADDOPTS",
    "PYTHONHASHSEED",
    "PYTHONPATH",
    "PYTHONUNBUFFERED",
)

# Set in the guest to the kernel's NAME: tests can tell where they run.
GUEST_MARK = "RAWTRACE_VM_KERNEL"

# Older 9p clients (5.10's) allocate msize bytes for every request, a stat or a walk too: with
# 512000, Python's start spent 20 s in the 5.10 guest's kernel; with 64 KiB, 5 s, as under 6.1.
NINEP_OPTS = "trans=virtio,version=9p2000.L,msize=65536"
# The bytecode cache's way into a guest, and what the guest compiled on the way out
BYTECODE_IN, BYTECODE_OUT = "cache.tar", "compiled.tar"


class HarnessError(Exception):
    """The harness, not the command, failed: exit 125 and show the console."""

    def __init__(self, message: str, console: str = "") -> None:
        super().__init__(message)
        self.console = console


# --------------------------------------------------------------------------
# The matrix list


@dataclasses.dataclass(frozen=True)
class KernelEntry:
    name: str
    suites: tuple[str, ...]
    abi_pattern: str


def read_kernel_list(path: Path = KERNELS_FILE) -> list[KernelEntry]:
    entries = []
    for lineno, raw in enumerate(path.read_text().splitlines(), 1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        fields = line.split()
        if len(fields) != 3:
            raise HarnessError(f"{path}:{lineno}: expected NAME SUITES ABI, got {raw!r}")
        name, suites, abi = fields
        entries.append(KernelEntry(name, tuple(suites.split(",")), abi))
    return entries


def find_kernel_entry(name: str) -> KernelEntry:
    entries = read_kernel_list()
    for entry in entries:
        if entry.name == name:
            return entry
    known = ", ".join(e.name for e in entries)
    raise HarnessError(f"unknown kernel {name!r}; {KERNELS_FILE} lists: {known}")


# --------------------------------------------------------------------------
# Host checks


def check_host_tools() -> None:
    """Fail early, naming the install command, instead of half-way through a boot."""
    problems = []
    if shutil.which("qemu-system-x86_64") is None:
        problems.append("qemu-system-x86_64 not found")
    busybox = shutil.which("busybox")
    if busybox is None:
        problems.append("busybox not found")
    elif any(p_type == PT_INTERP for p_type, _ in elf_segments(Path(busybox).read_bytes())):
        # The initramfs has no libc, so only a static busybox runs there.
        problems.append(f"{busybox} is dynamically linked")
    if problems:
        raise HarnessError("; ".join(problems) + f"; install them with: {INSTALL_HINT}")


# --------------------------------------------------------------------------
# ELF, just enough to read a module's .modinfo and vmlinux's PVH note

PT_INTERP = 3
PT_NOTE = 4
XEN_ELFNOTE_PHYS32_ENTRY = 18


def _check_elf64(data: bytes) -> None:
    if data[:4] != b"\x7fELF" or data[4] != 2 or data[5] != 1:
        raise ValueError("not a little-endian ELF64 file")


def elf_segments(data: bytes) -> Iterator[tuple[int, bytes]]:
    _check_elf64(data)
    (phoff,) = struct.unpack_from("<Q", data, 0x20)
    phentsize, phnum = struct.unpack_from("<HH", data, 0x36)
    for i in range(phnum):
        p_type, _, p_offset, _, _, p_filesz = struct.unpack_from(
            "<IIQQQQ", data, phoff + i * phentsize
        )
        yield p_type, data[p_offset : p_offset + p_filesz]


def elf_section(data: bytes, wanted: str) -> bytes:
    _check_elf64(data)
    (shoff,) = struct.unpack_from("<Q", data, 0x28)
    shentsize, shnum, shstrndx = struct.unpack_from("<HHH", data, 0x3A)

    def header(i: int) -> tuple[int, int, int]:
        """sh_name, sh_offset and sh_size of section I."""
        base = shoff + i * shentsize
        (name,) = struct.unpack_from("<I", data, base)
        offset, size = struct.unpack_from("<QQ", data, base + 0x18)
        return name, offset, size

    _, strtab, _ = header(shstrndx)
    for i in range(shnum):
        name, offset, size = header(i)
        if data[strtab + name : data.index(b"\0", strtab + name)] == wanted.encode():
            return data[offset : offset + size]
    return b""


def has_pvh_note(vmlinux: bytes) -> bool:
    """QEMU boots an ELF kernel only through PVH, which needs this Xen note."""
    for p_type, notes in elf_segments(vmlinux):
        pos = 0
        while p_type == PT_NOTE and pos + 12 <= len(notes):
            namesz, descsz, n_type = struct.unpack_from("<III", notes, pos)
            if (
                notes[pos + 12 : pos + 12 + namesz] == b"Xen\0"
                and n_type == XEN_ELFNOTE_PHYS32_ENTRY
            ):
                return True
            pos += 12 + (namesz + 3) // 4 * 4 + (descsz + 3) // 4 * 4
    return False


# --------------------------------------------------------------------------
# vmlinuz -> vmlinux: PVH boot of the plain ELF is about twice as fast as
# letting the bzImage decompress itself under TCG.


def _zstd_decompress(data: bytes) -> bytes:
    # Python has no zstd module before 3.14.
    if shutil.which("zstd") is None:
        raise ValueError(f"zstd is not installed ({INSTALL_HINT})")
    proc = subprocess.run(["zstd", "-dcq"], input=data, capture_output=True, check=False)
    if proc.returncode != 0:
        raise ValueError(f"zstd: {proc.stderr.decode(errors='replace').strip()}")
    return proc.stdout


def extract_vmlinux(bzimage: bytes) -> bytes:
    """Decompress the payload that the x86 boot header points at."""
    if bzimage[0x202:0x206] != b"HdrS":
        raise ValueError("no x86 boot header")
    setup_sects = bzimage[0x1F1] or 4
    payload_offset, payload_length = struct.unpack_from("<II", bzimage, 0x248)
    start = (setup_sects + 1) * 512 + payload_offset
    payload = bzimage[start : start + payload_length]
    if payload.startswith(b"\x1f\x8b"):
        vmlinux = zlib.decompressobj(wbits=31).decompress(payload)
    elif payload.startswith(b"\xfd7zXZ\x00"):
        vmlinux = lzma.LZMADecompressor(lzma.FORMAT_XZ).decompress(payload)
    elif payload.startswith(b"\x28\xb5\x2f\xfd"):
        # The last 4 bytes are the size that the kernel build appends; zstd
        # rejects them as a truncated frame.
        vmlinux = _zstd_decompress(payload[:-4])
    else:
        raise ValueError(f"unsupported payload compression (magic {payload[:6].hex()})")
    if not has_pvh_note(vmlinux):
        raise ValueError("the kernel has no PVH entry point")
    return vmlinux


# --------------------------------------------------------------------------
# cpio (newc), written here so the host needs no cpio binary


class Cpio:
    def __init__(self) -> None:
        self._chunks: list[bytes] = []
        self._ino = 0

    def _add(self, name: str, mode: int, data: bytes = b"", rdev: tuple[int, int] = (0, 0)) -> None:
        self._ino += 1
        # ino mode uid gid nlink mtime filesize devmajor devminor rdevmajor rdevminor namesize check
        fields = (self._ino, mode, 0, 0, 1, 0, len(data), 0, 0, *rdev, len(name) + 1, 0)
        header = b"070701" + b"".join(b"%08x" % f for f in fields)
        for chunk in (header + name.encode() + b"\0", data):
            self._chunks.append(chunk + b"\0" * (-len(chunk) % 4))

    def directory(self, name: str) -> None:
        self._add(name, 0o040755)

    def file(self, name: str, data: bytes, mode: int = 0o644) -> None:
        self._add(name, 0o100000 | mode, data)

    def char_device(self, name: str, major: int, minor: int) -> None:
        self._add(name, 0o020600, rdev=(major, minor))

    def finish(self) -> bytes:
        self._add("TRAILER!!!", 0)
        archive = b"".join(self._chunks)
        # The kernel accepts archives concatenated on 4-byte boundaries;
        # 512 is what cpio(1) pads to.
        return archive + b"\0" * (-len(archive) % 512)


# --------------------------------------------------------------------------
# Modules


def _module_name(path: Path) -> str:
    return path.name.split(".ko", 1)[0].replace("-", "_")


def read_module(path: Path) -> bytes:
    """The .ko bytes; busybox insmod cannot read compressed modules."""
    data = path.read_bytes()
    if path.name.endswith(".ko.xz"):
        return lzma.decompress(data)
    if path.name.endswith(".ko.gz"):
        return gzip.decompress(data)
    if path.name.endswith(".ko.zst"):
        return _zstd_decompress(data)
    return data


def module_dependencies(ko: bytes) -> list[str]:
    for field in elf_section(ko, ".modinfo").split(b"\0"):
        if field.startswith(b"depends="):
            return [d.replace("-", "_") for d in field[8:].decode().split(",") if d]
    return []


def modules_in_load_order(module_dir: Path, roots: Iterable[str]) -> list[tuple[str, bytes]]:
    """ROOTS and their dependencies, each after the modules it depends on.

    The .deb carries no modules.dep, so the `depends=` field of each .ko is
    followed instead.
    """
    files = {_module_name(p): p for p in module_dir.rglob("*.ko*")}
    ordered: dict[str, bytes] = {}

    def visit(name: str, required: bool) -> None:
        if name in ordered:
            return
        if name not in files:
            if required:
                raise HarnessError(f"module {name} is missing from {module_dir}")
            return
        ko = read_module(files[name])
        for dep in module_dependencies(ko):
            visit(dep, required=True)
        ordered[name] = ko

    for root in roots:
        visit(root, required=False)
    return list(ordered.items())


def modules_cpio(module_dir: Path) -> bytes:
    archive = Cpio()
    for d in ("lib", "lib/modules"):
        archive.directory(d)
    modules = modules_in_load_order(module_dir, ROOT_MODULES)
    for name, ko in modules:
        archive.file(f"lib/modules/{name}.ko", ko)
    archive.file("lib/modules/load", "".join(f"{n}\n" for n, _ in modules).encode())
    return archive.finish()


# --------------------------------------------------------------------------
# Debian packages, through a private apt state under the cache


@dataclasses.dataclass(frozen=True)
class AptSource:
    uri: str
    suites: tuple[str, ...]
    signed_by: str


def _host_apt_sources() -> Iterator[AptSource]:
    """Every `deb` entry of the host's apt config, in both file formats."""
    etc = Path("/etc/apt")
    one_line = [etc / "sources.list", *sorted((etc / "sources.list.d").glob("*.list"))]
    for path in one_line:
        for raw in path.read_text().splitlines() if path.is_file() else []:
            m = re.match(r"\s*deb\s+(?:\[([^]]*)\]\s+)?(\S+)\s+(\S+)", raw)
            if m:
                options = dict(o.split("=", 1) for o in (m[1] or "").split() if "=" in o)
                yield AptSource(m[2], (m[3],), options.get("signed-by", ""))
    for path in sorted((etc / "sources.list.d").glob("*.sources")):
        for paragraph in re.split(r"\n\s*\n", path.read_text()):
            matches = re.findall(r"^([\w-]+):[ \t]*(.*)$", paragraph, re.MULTILINE)
            fields = {key.lower(): value for key, value in matches}
            if "deb" not in fields.get("types", "").split() or fields.get("enabled") == "no":
                continue
            suites = tuple(fields.get("suites", "").split())
            for uri in fields.get("uris", "").split():
                yield AptSource(uri, suites, fields.get("signed-by", ""))


def mirror_for(suite: str) -> AptSource:
    """The host's Debian mirror for SUITE: its security entry for `*-security`.

    Debian entries are told from third-party ones by naming the host's own
    release (bookworm, bookworm-updates, ...); `nodistro` or
    `cloud-sdk-bookworm` do not.
    """
    codename = ""
    for line in Path("/etc/os-release").read_text().splitlines():
        if line.startswith("VERSION_CODENAME="):
            codename = line.split("=", 1)[1].strip('"')
    want_security = suite.endswith("-security")
    for source in _host_apt_sources():
        for s in source.suites:
            if s.split("-")[0] == codename and s.endswith("-security") == want_security:
                return source
    kind = "security" if want_security else "main"
    raise HarnessError(f"no Debian {kind} mirror for {codename!r} found in /etc/apt sources")


class PrivateApt:
    """apt-get and apt-cache on their own lists, leaving the system's apt alone."""

    def __init__(self, state: Path, suites: Sequence[str]) -> None:
        self.state = state
        (state / "lists" / "partial").mkdir(parents=True, exist_ok=True)
        (state / "cache" / "archives" / "partial").mkdir(parents=True, exist_ok=True)
        lines = []
        for suite in suites:
            mirror = mirror_for(suite)
            options = "arch=amd64"
            # A keyring file; an inline key block cannot go into a one-line
            # sources.list, and apt's default keyrings then have to do.
            if mirror.signed_by.startswith("/"):
                options += f" signed-by={mirror.signed_by}"
            lines.append(f"deb [{options}] {mirror.uri} {suite} main\n")
        (state / "sources.list").write_text("".join(lines))

    def _options(self) -> list[str]:
        settings = {
            "Dir::Etc::SourceList": self.state / "sources.list",
            "Dir::Etc::SourceParts": "/dev/null",
            "Dir::State::Lists": self.state / "lists",
            "Dir::Cache": self.state / "cache",
            "Dir::State::status": "/dev/null",
            "APT::Architecture": "amd64",
            "Acquire::Languages": "none",
            # Root-owned cache dirs: the _apt sandbox user could not write there.
            "APT::Sandbox::User": "root",
        }
        return [arg for key, value in settings.items() for arg in ("-o", f"{key}={value}")]

    def _run(self, tool: str, *args: str, cwd: Path | None = None) -> str:
        command = [tool, *self._options(), *args]
        proc = subprocess.run(command, cwd=cwd, capture_output=True, text=True, check=False)
        if proc.returncode != 0:
            raise HarnessError(
                f"{shlex.join([tool, *args])} failed (exit {proc.returncode}):\n"
                + proc.stdout
                + proc.stderr
            )
        return proc.stdout

    def update(self) -> None:
        # Without --error-on=any a suite that failed to download is only a warning.
        self._run("apt-get", "update", "--error-on=any")

    def package_names(self, prefix: str) -> set[str]:
        return set(self._run("apt-cache", "pkgnames", prefix).split())

    def download(self, packages: Sequence[str], dest: Path) -> None:
        self._run("apt-get", "download", *packages, cwd=dest)


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


# --------------------------------------------------------------------------
# The cache: resolved ABIs, downloaded .debs and the files a boot needs


@dataclasses.dataclass(frozen=True)
class Kernel:
    name: str
    abi: str
    directory: Path

    @property
    def vmlinuz(self) -> Path:
        return self.directory / "vmlinuz"

    @property
    def modules(self) -> Path:
        return self.directory / "modules.cpio"

    def boot_image(self) -> Path:
        """vmlinux for a PVH boot, made on first use; else the bzImage."""
        vmlinux = self.directory / "vmlinux"
        if not vmlinux.exists():
            try:
                data = extract_vmlinux(self.vmlinuz.read_bytes())
            except ValueError as e:
                warn(f"booting the slower bzImage of {self.abi}: cannot extract vmlinux: {e}")
                return self.vmlinuz
            write_atomically(vmlinux, data)
        return vmlinux


def warn(message: str) -> None:
    print(f"rawtrace-vm: {message}", file=sys.stderr, flush=True)


def write_atomically(path: Path, data: bytes) -> None:
    """Readers see the old file or the whole new one, never a partial one."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    os.chmod(tmp, 0o644)
    os.replace(tmp, path)


def _scratch_dir(parent: Path, name: str) -> Path:
    """An empty directory that becomes PARENT/NAME by a rename once complete."""
    parent.mkdir(parents=True, exist_ok=True)
    path = Path(tempfile.mkdtemp(dir=parent, prefix=f".{name}."))
    path.chmod(0o755)
    return path


def _remove_leftovers() -> None:
    """Scratch directories of runs that were killed; only called under the lock."""
    for path in (*CACHE.glob(".*"), *CACHE.glob("debs/.*"), *CACHE.glob("kernels/.*")):
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
    return abi if fresh and isinstance(abi, str) and (CACHE / "kernels" / abi).is_dir() else None


def _first_existing(*paths: Path) -> Path | None:
    return next((p for p in paths if p.exists()), None)


def _build_kernel(abi: str, packages: list[str], apt: PrivateApt) -> None:
    """Download PACKAGES into debs/ABI and build kernels/ABI from them."""
    _remove_leftovers()
    debs = CACHE / "debs" / abi
    if not debs.is_dir():
        tmp = _scratch_dir(debs.parent, abi)
        apt.download(packages, tmp)
        tmp.rename(debs)
    tmp = _scratch_dir(CACHE / "kernels", abi)
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
        (tmp / "modules.cpio").write_bytes(modules_cpio(module_dir))
    tmp.rename(CACHE / "kernels" / abi)


def ensure_kernel(entry: KernelEntry) -> Kernel:
    """Resolve ENTRY to a kernel and make sure it is in the cache."""
    abi = _cached_abi(entry, RESOLVE_TTL_S)
    if abi is None:
        with cache_lock():
            abi = _cached_abi(entry, RESOLVE_TTL_S) or _resolve_and_build(entry)
    return Kernel(entry.name, abi, CACHE / "kernels" / abi)


def _resolve_and_build(entry: KernelEntry) -> str:
    start = time.monotonic()
    try:
        apt = PrivateApt(CACHE / "apt" / entry.name, entry.suites)
        apt.update()
        names = apt.package_names("linux-")
        abi = newest_abi(names, entry.abi_pattern)
        if abi is None:
            raise HarnessError(
                f"no package linux-image-{entry.abi_pattern} in {','.join(entry.suites)}"
            )
        if not (CACHE / "kernels" / abi).is_dir():
            _build_kernel(abi, packages_for(abi, names), apt)
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


# --------------------------------------------------------------------------
# The guest


@dataclasses.dataclass(frozen=True)
class VmOptions:
    timeout_s: float = 1800.0
    memory: str = "2G"
    cpus: int = 1
    shares: tuple[Path, ...] = ()


# Kernel interfaces the command expects, mounted over the host's copies that
# the 9p root shows.
GUEST_MOUNTS = (
    ("proc", "/proc"),
    ("sysfs", "/sys"),
    ("devtmpfs", "/dev"),
    ("devpts", "/dev/pts"),
    ("tmpfs", "/dev/shm"),
    ("tracefs", "/sys/kernel/tracing"),
    ("debugfs", "/sys/kernel/debug"),
    ("bpf", "/sys/fs/bpf"),
    ("cgroup2", "/sys/fs/cgroup"),
)
NEWROOT = "/newroot"
# console, the command's stdout, its stderr, its exit status: ttyS0..ttyS3.
SERIAL_PORTS = ("console", "stdout", "stderr", "status")
# Typically 5-15 s; only a hung boot takes this long.
BOOT_TIMEOUT_S = 180
# cryptomgr.notests: the crypto self-tests take ~0.8 s of boot under TCG.
KERNEL_CMDLINE = "console=ttyS0 panic=-1 rdinit=/init cryptomgr.notests"


def guest_argv(argv: Sequence[str]) -> list[str]:
    """Replace a bare python/python3 by the interpreter running this harness.

    On a pyenv host `python3` is a shim that costs about 4.5 s a call under
    TCG; the interpreter running the harness is what the shim picks here.
    """
    if argv[0] in ("python", "python3"):
        return [sys.executable, *argv[1:]]
    return list(argv)


def guest_env(pycache: Path) -> dict[str, str]:
    # The harness's interpreter directory goes first on PATH for the same
    # reason as in guest_argv: a `python3` run by the command skips the shim.
    path = os.environ.get("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
    env = {"HOME": "/root", "PATH": f"{os.path.dirname(sys.executable)}:{path}"}
    for key, value in os.environ.items():
        if key in PASSED_ENV or key.startswith("RAWTRACE_"):
            env[key] = value
    # Compiling is 16x slower in the guest (pytest's collection alone went
    # from 23 s to 55 s without bytecode), so the bytecode is kept in the
    # cache across runs and kernels, even where the host turns it off.
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env["PYTHONPYCACHEPREFIX"] = str(pycache)
    return env


def _under(path: str, directory: str) -> bool:
    return path == directory or path.startswith(directory.rstrip("/") + "/")


def _mount(fstype: str, source: str, target: str, options: str = "") -> str:
    """A line of /init that mounts SOURCE on TARGET, creating TARGET if needed."""
    o = f"-o {options} " if options else ""
    t = shlex.quote(target)
    return f"mkdir -p {t} && mount -t {fstype} {o}{source} {t} || fail mounting {t}"


def init_script(
    argv: Sequence[str], cwd: str, env: dict[str, str], shares: Sequence[Path], bytecode: Path
) -> str:
    """The guest's /init, run by busybox sh as PID 1. `bytecode`, one of the shares, holds
    the bytecode cache (BYTECODE_IN); what the command compiles goes back in BYTECODE_OUT."""
    lines = [
        "#!/bin/busybox sh",
        "/bin/busybox --install -s /bin",
        "export PATH=/bin",
        # A harness failure: the message goes to the console, no exit status
        # to ttyS3, which the host reports as exit 125.
        'fail() { echo "rawtrace-vm: $*"; poweroff -f; }',
        "mount -t proc proc /proc && mount -t sysfs sysfs /sys && mount -t devtmpfs dev /dev",
        'for m in $(cat /lib/modules/load); do insmod /lib/modules/$m.ko || fail "insmod $m"; done',
        _mount("9p", "hostroot", "/lower", f"{NINEP_OPTS},ro,cache=loose"),
        "mount -t tmpfs -o mode=0755 tmpfs /rw && mkdir /rw/upper /rw/work",
        _mount(
            "overlay", "overlay", NEWROOT, "lowerdir=/lower,upperdir=/rw/upper,workdir=/rw/work"
        ),
    ]
    lines += [_mount(fstype, fstype, NEWROOT + target) for fstype, target in GUEST_MOUNTS]
    # /tmp is emptied like on a booted system, unless the command runs there.
    if not _under(cwd, "/tmp"):
        lines.append(_mount("tmpfs", "tmpfs", f"{NEWROOT}/tmp", "mode=1777"))
    for i, share in enumerate(shares):
        lines.append(_mount("9p", f"share{i}", f"{NEWROOT}{share}", NINEP_OPTS))
    # Python reads its bytecode from a tmpfs: from the 9p share, each start of Python in the
    # guest took 3 s longer (rawtrace's import: 7.9 s from the share, 4.9 s from a tmpfs).
    pycache = NEWROOT + env["PYTHONPYCACHEPREFIX"]
    lines += [
        _mount("tmpfs", "tmpfs", pycache),
        f"tar -xf {NEWROOT}{bytecode}/{BYTECODE_IN} -C {pycache} || fail unpack bytecode",
        "touch /bytecode.stamp",
    ]
    command = [
        *("chroot", NEWROOT, "/usr/bin/env", "-i", *(f"{k}={v}" for k, v in env.items())),
        *("/bin/sh", "-c", 'cd "$1" && shift && exec "$@"', "sh", cwd, *argv),
    ]
    lines += [
        # Old kernels charge BPF maps and programs to RLIMIT_MEMLOCK.
        "ulimit -l unlimited",
        # raw: no \n -> \r\n on the way out.
        "for t in 1 2 3; do stty -F /dev/ttyS$t raw -echo || fail stty ttyS$t; done",
        # Pipes, not the ttys themselves, so the command sees what it sees in
        # CI (no colours, block buffering); each cat drains its tty on close.
        "mkfifo /stdout /stderr",
        "cat /stdout >/dev/ttyS1 & out=$!",
        "cat /stderr >/dev/ttyS2 & err=$!",
        # From here on the host counts --timeout.
        "echo start >/dev/ttyS3",
        f"{shlex.join(command)} </dev/null >/stdout 2>/stderr",
        "rc=$?",
        "wait $out $err",
        f"(cd {pycache} && find . -type f -newer /bytecode.stamp) >/bytecode.new",
        # (busybox's tar has no -T; the names are paths of .pyc files, without blanks)
        f"[ -s /bytecode.new ] && tar -cf {NEWROOT}{bytecode}/{BYTECODE_OUT} -C {pycache} "
        "$(cat /bytecode.new)",
        # what the shares got reaches the host before the status says done
        "sync",
        'echo "exit $rc" >/dev/ttyS3',
        "poweroff -f",
    ]
    return "".join(f"{line}\n" for line in lines)


def run_cpio(script: str) -> bytes:
    """Busybox and /init; appended to the kernel's cached modules.cpio."""
    archive = Cpio()
    for d in ("bin", "dev", "proc", "sys", "lower", "rw", NEWROOT.lstrip("/")):
        archive.directory(d)
    # The kernel opens it as PID 1's stdin/stdout/stderr before /dev is mounted.
    archive.char_device("dev/console", 5, 1)
    busybox = shutil.which("busybox") or "/bin/busybox"
    archive.file("bin/busybox", Path(busybox).read_bytes(), 0o755)
    archive.file("init", script.encode(), 0o755)
    return archive.finish()


def _qemu_path(path: Path) -> str:
    # A comma ends a QEMU option value unless doubled.
    return str(path).replace(",", ",,")


def qemu_command(
    image: Path, initrd: Path, serial: Sequence[Path], options: VmOptions
) -> list[str]:
    command = [
        *("qemu-system-x86_64", "-nodefaults", "-no-user-config", "-display", "none"),
        *("-no-reboot", "-accel", "tcg,thread=multi", "-cpu", "max"),
        *("-smp", str(options.cpus), "-m", options.memory),
        *("-kernel", str(image), "-initrd", str(initrd), "-append", KERNEL_CMDLINE),
        *(
            "-virtfs",
            "local,path=/,mount_tag=hostroot,security_model=none,readonly=on,multidevs=remap",
        ),
    ]
    for path in serial:
        command += ["-serial", f"file:{_qemu_path(path)}"]
    for i, share in enumerate(options.shares):
        command += [
            "-virtfs",
            f"local,path={_qemu_path(share)},mount_tag=share{i},security_model=none,multidevs=remap",
        ]
    return command


class _Guest:
    """A running QEMU and its status port, read as it grows."""

    def __init__(self, proc: subprocess.Popen[bytes], status: BinaryIO, run_dir: Path) -> None:
        self.proc = proc
        self.run_dir = run_dir
        self._status = status
        self._seen = b""

    def _read_status(self) -> bytes:
        self._seen += self._status.read()
        return self._seen

    def started(self) -> bool:
        return b"start\n" in self._read_status()

    def exit_status(self) -> int | None:
        m = re.search(rb"^exit (\d+)$", self._read_status(), re.MULTILINE)
        return int(m[1]) if m else None

    def console_log(self) -> str:
        console = (self.run_dir / "console").read_text(errors="replace")
        qemu = (self.run_dir / "qemu.log").read_text(errors="replace")
        return console + (f"\n--- qemu output ---\n{qemu}" if qemu.strip() else "")


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.kill()
    proc.wait()


def _pump(guest: _Guest, streams: Sequence[tuple[BinaryIO, BinaryIO]], timeout_s: float) -> None:
    """Copy the command's output as it comes until QEMU exits.

    The boot and the command have separate deadlines, so that --timeout
    means the same on a slow boot as on a fast one.
    """
    deadline = time.monotonic() + BOOT_TIMEOUT_S
    started = False
    while True:
        exited = guest.proc.poll() is not None
        for source, sink in streams:
            data = source.read()
            if data:
                sink.write(data)
                sink.flush()
        if exited:
            return
        if not started and guest.started():
            started = True
            deadline = time.monotonic() + timeout_s
        if time.monotonic() > deadline:
            if started:
                raise HarnessError(f"the command timed out after {timeout_s:g} s")
            raise HarnessError(f"the guest did not boot within {BOOT_TIMEOUT_S} s")
        time.sleep(0.05)


def run_in_vm(
    kernel: Kernel,
    argv: Sequence[str],
    *,
    cwd: str,
    options: VmOptions,
    stdout: BinaryIO,
    stderr: BinaryIO,
) -> int:
    """Run ARGV in CWD under KERNEL and return its exit status."""
    pycache = CACHE / "pycache"
    pycache.mkdir(parents=True, exist_ok=True)
    env = {**guest_env(pycache), GUEST_MARK: kernel.name}
    with tempfile.TemporaryDirectory(prefix="rawtrace-vm-") as tmp:
        run_dir = Path(tmp)
        bytecode = run_dir / "bytecode"
        bytecode.mkdir()
        with tarfile.open(bytecode / BYTECODE_IN, "w") as tar:
            tar.add(pycache, arcname=".", filter=_current_bytecode)
        options = dataclasses.replace(options, shares=(*options.shares, bytecode))
        script = init_script(guest_argv(argv), cwd, env, options.shares, bytecode)
        serial = [run_dir / name for name in SERIAL_PORTS]
        for path in serial:
            path.touch()
        initrd = run_dir / "initrd"
        initrd.write_bytes(kernel.modules.read_bytes() + run_cpio(script))
        command = qemu_command(kernel.boot_image(), initrd, serial, options)
        with contextlib.ExitStack() as files:
            out, err, status_port = (files.enter_context(open(p, "rb")) for p in serial[1:])
            log = files.enter_context(open(run_dir / "qemu.log", "wb"))
            proc = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=log, stderr=log)
            files.callback(_stop, proc)
            guest = _Guest(proc, status_port, run_dir)
            try:
                _pump(guest, [(out, stdout), (err, stderr)], options.timeout_s)
            except HarnessError as e:
                raise HarnessError(f"{kernel.abi}: {e}", guest.console_log()) from None
            status = guest.exit_status()
            if status is None:
                raise HarnessError(
                    f"{kernel.abi}: no exit status came back (qemu exited {guest.proc.returncode})",
                    guest.console_log(),
                )
            _keep_bytecode(bytecode / BYTECODE_OUT, pycache)
            return status


def _current_bytecode(member: tarfile.TarInfo) -> tarfile.TarInfo | None:
    """The cache's bytecode of sources that still exist (checkouts come and go; each file
    costs the guest's boot time), without the files _keep_bytecode is writing."""
    if member.name.endswith(".part"):
        return None
    source = Path("/", member.name)
    if member.isfile():
        source = source.with_name(source.name.split(".", 1)[0] + ".py")
    return member if source.exists() else None


def _keep_bytecode(archive: Path, pycache: Path) -> None:
    """Add what a guest compiled to the cache. Each file is replaced whole: another guest may
    be packing the cache meanwhile, and a torn .pyc fails the import that reads it."""
    if not archive.exists():
        return
    root = pycache.resolve()
    with tarfile.open(archive) as tar:
        for member in tar:
            data = tar.extractfile(member) if member.isfile() else None
            target = (root / member.name).resolve()
            if data is None or root not in target.parents:
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            partial = target.with_name(f"{target.name}.{os.getpid()}.part")
            partial.write_bytes(data.read())
            os.replace(partial, target)


def report_failure(error: HarnessError) -> int:
    """Print a harness failure the way run and matrix show it; return 125."""
    if error.console:
        sys.stderr.write(f"--- guest console ---\n{error.console}\n--- end of guest console ---\n")
    warn(str(error))
    return HARNESS_FAILURE


# --------------------------------------------------------------------------
# Command lines of run and matrix


class ArgumentParser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        # 2 could be the command's own status; a usage error is the harness's.
        self.print_usage(sys.stderr)
        warn(message)
        sys.exit(HARNESS_FAILURE)


def add_vm_options(parser: argparse.ArgumentParser) -> None:
    defaults = VmOptions()
    parser.add_argument(
        "--timeout",
        type=float,
        default=defaults.timeout_s,
        metavar="S",
        help="seconds the command may run, boot not counted (default %(default)g)",
    )
    parser.add_argument(
        "--mem",
        default=defaults.memory,
        help="guest memory; overlay writes use it (default %(default)s)",
    )
    parser.add_argument(
        "--cpus", type=int, default=defaults.cpus, help="vCPUs (default %(default)d)"
    )
    parser.add_argument(
        "--share",
        action="append",
        default=[],
        metavar="DIR",
        help="host directory the guest sees read-write at the same path, e.g. for junit XML",
    )


def parse_with_command(
    parser: argparse.ArgumentParser, args: Sequence[str]
) -> tuple[argparse.Namespace, list[str]]:
    """Split ARGS at `--`: the harness's options before, the command after."""
    split = args.index("--") if "--" in args else len(args)
    options = parser.parse_args(args[:split])  # first, so that --help works
    if split == len(args):
        parser.error("missing `-- COMMAND...`")
    command = list(args[split + 1 :])
    if not command:
        parser.error("missing COMMAND after `--`")
    for share in options.share:
        if not os.path.isdir(share):
            parser.error(f"--share {share}: not a directory")
    return options, command


def vm_options(options: argparse.Namespace) -> VmOptions:
    return VmOptions(
        timeout_s=options.timeout,
        memory=options.mem,
        cpus=options.cpus,
        shares=tuple(Path(s).resolve() for s in options.share),
    )
