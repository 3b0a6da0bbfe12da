"""Boot a kernel of the cache in QEMU with the host root and run one command in it.

The guest shares the host's / read-only over 9p, puts a RAM overlay on top so the whole tree
is writable, chroots into it and runs the command (initramfs.py writes how). Its stdout and
stderr come back on two serial ports, its exit status on a third; the kernel console goes to
the first and is only shown when something fails.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import BinaryIO

from elf import PT_INTERP, elf_segments
from guest_bytecode import keep_bytecode, pack_bytecode
from harness_error import INSTALL_HINT, HarnessError
from initramfs import init_script, run_cpio
from kernels import ARCHES, CACHE, Arch, Kernel
from userspace import busybox_of, ensure_userspace


def pycache_of(arch: Arch) -> Path:
    """The bytecode cache of ARCH's guests: amd64's is the host interpreter's, arm64's its
    Debian one's, whose stdlib and packages lie elsewhere."""
    return CACHE / ("pycache" if arch.debian == "amd64" else f"pycache-{arch.debian}")


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


@dataclasses.dataclass(frozen=True)
class VmOptions:
    timeout_s: float = 1800.0
    memory: str = "2G"
    cpus: int = 1
    shares: tuple[Path, ...] = ()


# console, the command's stdout, its stderr, its exit status: ttyS0..ttyS3 (amd64), or
# ttyAMA0 and three virtio-serial ports (arm64).
SERIAL_PORTS = ("console", "stdout", "stderr", "status")
# Typically 5-15 s; only a hung boot takes this long.
BOOT_TIMEOUT_S = 180
# cryptomgr.notests: the crypto self-tests take ~0.8 s of boot under TCG.
KERNEL_CMDLINE = "console={} panic=-1 rdinit=/init cryptomgr.notests"
# An arm64 guest's Python and PATH, in its own userspace.
USERSPACE_PYTHON = "/usr/bin/python3"
USERSPACE_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def check_host_tools(arch: Arch = ARCHES["amd64"]) -> None:
    """Fail early, naming the install command, instead of half-way through a boot."""
    problems = []
    if shutil.which(arch.qemu) is None:
        problems.append(f"{arch.qemu} not found")
    busybox = shutil.which("busybox")
    if arch.own_userspace:
        pass  # its busybox comes with its userspace
    elif busybox is None:
        problems.append("busybox not found")
    elif any(p_type == PT_INTERP for p_type, _ in elf_segments(Path(busybox).read_bytes())):
        # The initramfs has no libc, so only a static busybox runs there.
        problems.append(f"{busybox} is dynamically linked")
    if problems:
        raise HarnessError("; ".join(problems) + f"; install them with: {INSTALL_HINT}")


def guest_argv(argv: Sequence[str], arch: Arch = ARCHES["amd64"]) -> list[str]:
    """Replace a bare python/python3 by the interpreter running this harness.

    On a pyenv host `python3` is a shim that costs about 4.5 s a call under
    TCG; the interpreter running the harness is what the shim picks here.
    A guest with a userspace of its own gets that userspace's Python.
    """
    if argv[0] in ("python", "python3"):
        return [USERSPACE_PYTHON if arch.own_userspace else sys.executable, *argv[1:]]
    return list(argv)


def guest_env(arch: Arch = ARCHES["amd64"]) -> dict[str, str]:
    # The harness's interpreter directory goes first on PATH for the same
    # reason as in guest_argv: a `python3` run by the command skips the shim.
    path = os.environ.get("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
    path = USERSPACE_PATH if arch.own_userspace else f"{os.path.dirname(sys.executable)}:{path}"
    env = {"HOME": "/root", "PATH": path}
    for key, value in os.environ.items():
        if key in PASSED_ENV or key.startswith("RAWTRACE_"):
            env[key] = value
    # Bytecode is kept across runs even where the host turns it off: guest_bytecode.py says why.
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env["PYTHONPYCACHEPREFIX"] = str(pycache_of(arch))
    return env


def _qemu_path(path: Path) -> str:
    # A comma ends a QEMU option value unless doubled.
    return str(path).replace(",", ",,")


def _serial_ports(serial: Sequence[Path], arch: Arch) -> list[str]:
    """The console on the machine's UART; the command's ports on more UARTs (amd64) or on
    virtio-serial ports named after SERIAL_PORTS (initramfs.py finds them by name)."""
    if not arch.own_userspace:
        return [arg for path in serial for arg in ("-serial", f"file:{_qemu_path(path)}")]
    args = ["-serial", f"file:{_qemu_path(serial[0])}", "-device", "virtio-serial-pci"]
    for nr, (name, path) in enumerate(zip(SERIAL_PORTS[1:], serial[1:]), 1):
        args += [
            *("-chardev", f"file,id={name},path={_qemu_path(path)}"),
            *("-device", f"virtserialport,chardev={name},name={name},nr={nr}"),
        ]
    return args


def qemu_command(
    image: Path,
    initrd: Path,
    serial: Sequence[Path],
    options: VmOptions,
    arch: Arch = ARCHES["amd64"],
) -> list[str]:
    command = [
        *(arch.qemu, "-nodefaults", "-no-user-config", "-display", "none"),
        *("-no-reboot", "-accel", "tcg,thread=multi", *arch.qemu_machine),
        *("-smp", str(options.cpus), "-m", options.memory),
        *("-kernel", str(image), "-initrd", str(initrd)),
        *("-append", KERNEL_CMDLINE.format(arch.console)),
        *(
            "-virtfs",
            "local,path=/,mount_tag=hostroot,security_model=none,readonly=on,multidevs=remap",
        ),
        *_serial_ports(serial, arch),
    ]
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
    arch = kernel.arch
    userspace = ensure_userspace(arch)
    pycache = pycache_of(arch)
    env = {**guest_env(arch), GUEST_MARK: kernel.name}
    with tempfile.TemporaryDirectory(prefix="rawtrace-vm-") as tmp:
        run_dir = Path(tmp)
        bytecode = run_dir / "bytecode"
        bytecode.mkdir()
        pack_bytecode(pycache, bytecode, userspace)
        options = dataclasses.replace(options, shares=(*options.shares, bytecode))
        script = init_script(guest_argv(argv, arch), cwd, env, options.shares, bytecode, userspace)
        serial = [run_dir / name for name in SERIAL_PORTS]
        for path in serial:
            path.touch()
        initrd = run_dir / "initrd"
        initrd.write_bytes(kernel.modules.read_bytes() + run_cpio(script, busybox_of(userspace)))
        command = qemu_command(kernel.boot_image(), initrd, serial, options, arch)
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
            keep_bytecode(pycache, bytecode)
            return status
