"""The guest's initramfs: a cpio writer, the modules that reach the root, and /init.

A kernel's modules.cpio is made once, when the kernel enters the cache; busybox and /init
are appended for each run, as /init holds the command.
"""

from __future__ import annotations

import shlex
from collections.abc import Iterable, Sequence
from pathlib import Path

from decompress import read_module
from elf import elf_section
from guest_bytecode import BYTECODE_IN, BYTECODE_OUT
from harness_error import HarnessError

# What the guest needs beyond the kernel image; their dependencies are found
# through modinfo.  A module with no .ko file is taken to be built in (virtio
# is, from 6.12 on).
ROOT_MODULES = ("virtio_pci", "9pnet_virtio", "9p", "overlay")

# Older 9p clients (5.10's) allocate msize bytes for every request, a stat or a walk too: with
# 512000, Python's start spent 20 s in the 5.10 guest's kernel; with 64 KiB, 5 s, as under 6.1.
NINEP_OPTS = "trans=virtio,version=9p2000.L,msize=65536"


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


class Cpio:
    """A newc archive, written here so that the host needs no cpio binary."""

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


def _module_name(path: Path) -> str:
    return path.name.split(".ko", 1)[0].replace("-", "_")


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


def modules_cpio(module_dir: Path, roots: Iterable[str] = ROOT_MODULES) -> bytes:
    archive = Cpio()
    for d in ("lib", "lib/modules"):
        archive.directory(d)
    modules = modules_in_load_order(module_dir, roots)
    for name, ko in modules:
        archive.file(f"lib/modules/{name}.ko", ko)
    archive.file("lib/modules/load", "".join(f"{n}\n" for n, _ in modules).encode())
    return archive.finish()


def _under(path: str, directory: str) -> bool:
    return path == directory or path.startswith(directory.rstrip("/") + "/")


def _mount(fstype: str, source: str, target: str, options: str = "") -> str:
    """A line of /init that mounts SOURCE on TARGET, creating TARGET if needed."""
    o = f"-o {options} " if options else ""
    t = shlex.quote(target)
    return f"mkdir -p {t} && mount -t {fstype} {o}{source} {t} || fail mounting {t}"


# Where /init sends the command's stdout, stderr and status: the 2nd-4th UART on amd64;
# virtio-serial ports (linked here by name at boot) where `virt` has one UART.
TTY_PORTS = ("/dev/ttyS1", "/dev/ttyS2", "/dev/ttyS3")
VIRTIO_PORTS = ("/dev/port-stdout", "/dev/port-stderr", "/dev/port-status")


def _link_virtio_ports() -> list[str]:
    """/dev/port-NAME for each virtio-serial port; they appear a moment after the driver."""
    names = " ".join(VIRTIO_PORTS)
    return [
        "for i in $(seq 50); do [ $(ls /sys/class/virtio-ports | wc -l) -ge 3 ] && break; "
        "sleep 0.1; done",
        'for p in /sys/class/virtio-ports/*; do ln -s "/dev/${p##*/}" "/dev/port-$(cat $p/name)"; '
        "done",
        f"for p in {names}; do [ -e $p ] || fail no $p; done",
    ]


def _root_mounts(userspace: Path | None) -> list[str]:
    """NEWROOT: the host's root (9p at /lower) with a RAM overlay; or USERSPACE (a directory
    of the host's) so, with the current directory a second overlay of the host's on it."""
    lower = "/lower" if userspace is None else f"/lower{userspace}"
    return [
        "mount -t tmpfs -o mode=0755 tmpfs /rw && mkdir /rw/upper /rw/work",
        _mount(
            "overlay", "overlay", NEWROOT, f"lowerdir={lower},upperdir=/rw/upper,workdir=/rw/work"
        ),
    ]


def _own_userspace(cwd: str) -> list[str]:
    """Busybox's applets, linked where they belong (the .debs have no shell, no coreutils);
    and the host's current directory over the userspace, writable, with the host's compiled
    files (*.so) hidden, as the guest cannot load them."""
    target = shlex.quote(NEWROOT + cwd)
    return [
        f"chroot {NEWROOT} /bin/busybox --install -s || fail busybox --install",
        "mkdir /rw/cwd /rw/cwd/upper /rw/cwd/work",
        _mount(
            "overlay",
            "overlay",
            NEWROOT + cwd,
            f"lowerdir={shlex.quote('/lower' + cwd)},upperdir=/rw/cwd/upper,workdir=/rw/cwd/work",
        ),
        f"find {target} -name .git -prune -o -name '*.so' -type f -exec rm -f {{}} +",
    ]


def init_script(
    argv: Sequence[str],
    cwd: str,
    env: dict[str, str],
    shares: Sequence[Path],
    bytecode: Path,
    userspace: Path | None = None,
) -> str:
    """The guest's /init, run by busybox sh as PID 1. `bytecode`, one of the shares, holds
    the bytecode cache (BYTECODE_IN); what the command compiles goes back in BYTECODE_OUT.
    USERSPACE: the root of an arm64 guest (userspace.py), whose ports are virtio-serial."""
    ports = TTY_PORTS if userspace is None else VIRTIO_PORTS
    lines = [
        "#!/bin/busybox sh",
        "/bin/busybox --install -s /bin",
        "export PATH=/bin",
        # A harness failure: the message goes to the console, no exit status
        # to the status port, which the host reports as exit 125.
        'fail() { echo "rawtrace-vm: $*"; poweroff -f; }',
        "mount -t proc proc /proc && mount -t sysfs sysfs /sys && mount -t devtmpfs dev /dev",
        'for m in $(cat /lib/modules/load); do insmod /lib/modules/$m.ko || fail "insmod $m"; done',
        *([] if userspace is None else _link_virtio_ports()),
        _mount("9p", "hostroot", "/lower", f"{NINEP_OPTS},ro,cache=loose"),
        *_root_mounts(userspace),
    ]
    lines += [_mount(fstype, fstype, NEWROOT + target) for fstype, target in GUEST_MOUNTS]
    # /tmp is emptied like on a booted system, unless the command runs there.
    if not _under(cwd, "/tmp"):
        lines.append(_mount("tmpfs", "tmpfs", f"{NEWROOT}/tmp", "mode=1777"))
    if userspace is not None:
        lines += _own_userspace(cwd)
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
    out, err, status = ports
    lines += [
        # Old kernels charge BPF maps and programs to RLIMIT_MEMLOCK.
        "ulimit -l unlimited",
        # raw: no \n -> \r\n on the way out.
        *[f"stty -F {tty} raw -echo || fail stty {tty}" for tty in ports if "ttyS" in tty],
        # Pipes, not the ports themselves, so the command sees what it sees in
        # CI (no colours, block buffering); each cat drains its port on close.
        "mkfifo /stdout /stderr",
        f"cat /stdout >{out} & out=$!",
        f"cat /stderr >{err} & err=$!",
        # From here on the host counts --timeout.
        f"echo start >{status}",
        f"{shlex.join(command)} </dev/null >/stdout 2>/stderr",
        "rc=$?",
        "wait $out $err",
        f"(cd {pycache} && find . -type f -newer /bytecode.stamp) >/bytecode.new",
        # (busybox's tar has no -T; the names are paths of .pyc files, without blanks)
        f"[ -s /bytecode.new ] && tar -cf {NEWROOT}{bytecode}/{BYTECODE_OUT} -C {pycache} "
        "$(cat /bytecode.new)",
        # what the shares got reaches the host before the status says done
        "sync",
        f'echo "exit $rc" >{status}',
        "poweroff -f",
    ]
    return "".join(f"{line}\n" for line in lines)


def run_cpio(script: str, busybox: Path) -> bytes:
    """Busybox and /init; appended to the kernel's cached modules.cpio."""
    archive = Cpio()
    for d in ("bin", "dev", "proc", "sys", "lower", "rw", NEWROOT.lstrip("/")):
        archive.directory(d)
    # The kernel opens it as PID 1's stdin/stdout/stderr before /dev is mounted.
    archive.char_device("dev/console", 5, 1)
    archive.file("bin/busybox", busybox.read_bytes(), 0o755)
    archive.file("init", script.encode(), 0o755)
    return archive.finish()
