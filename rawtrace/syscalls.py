"""The one module that touches the FFI: raw bpf() and perf_event_open() through libc's syscall().

cffi in ABI mode needs no compiler: it calls libc's variadic syscall() with every argument cast to
a long, which is how the kernel's syscall ABI takes them on every 64-bit architecture.
"""

from __future__ import annotations

import os
import platform
from typing import Any

import cffi

_ffi = cffi.FFI()
_ffi.cdef("long syscall(long number, ...);")
_libc: Any = _ffi.dlopen(None)  # its functions come from the cdef above

# Syscall numbers per architecture (arch/*/entry/syscalls, include/uapi/asm-generic/unistd.h).
_SYSCALL_NUMBERS = {
    "x86_64": {"bpf": 321, "perf_event_open": 298},
    "aarch64": {"bpf": 280, "perf_event_open": 241},
    "riscv64": {"bpf": 280, "perf_event_open": 241},
    "s390x": {"bpf": 351, "perf_event_open": 331},
    "ppc64le": {"bpf": 361, "perf_event_open": 319},
}


def _syscall_number(name: str) -> int:
    machine = platform.machine()
    try:
        return _SYSCALL_NUMBERS[machine][name]
    except KeyError:
        raise OSError(f"rawtrace does not know the {name} syscall number on {machine}") from None


_NR_BPF = _syscall_number("bpf")
_NR_PERF_EVENT_OPEN = _syscall_number("perf_event_open")


def address_of(buffer: bytearray) -> int:
    """The address of a bytearray's storage, for pointers inside attribute structs.

    It stays valid while the bytearray lives and is not resized; callers keep it referenced
    for the duration of the syscall that reads it.
    """
    return int(_ffi.cast("uintptr_t", _ffi.from_buffer(buffer)))


def _syscall(number: int, *args: int) -> int:
    result = int(_libc.syscall(number, *(_ffi.cast("long", arg) for arg in args)))
    if result < 0:
        err = _ffi.errno
        raise OSError(err, os.strerror(err))
    return result


def bpf(cmd: int, attr: bytearray) -> int:
    """bpf(cmd, &attr, sizeof(attr)); raises OSError with the kernel's errno."""
    return _syscall(_NR_BPF, cmd, address_of(attr), len(attr))


def perf_event_open(attr: bytearray, pid: int, cpu: int, group_fd: int, flags: int) -> int:
    """perf_event_open(&attr, pid, cpu, group_fd, flags); raises OSError with the kernel's errno."""
    return _syscall(_NR_PERF_EVENT_OPEN, address_of(attr), pid, cpu, group_fd, flags)


_ffi.cdef(
    "int mount(const char *source, const char *target, const char *fstype,"
    " unsigned long flags, const void *data);"
)


def mount(source: str, target: str, fstype: str) -> None:
    """mount(2) with no flags or data; raises OSError with the kernel's errno."""
    if _libc.mount(source.encode(), target.encode(), fstype.encode(), 0, _ffi.NULL) != 0:
        err = _ffi.errno
        raise OSError(err, f"mount {fstype} on {target}: {os.strerror(err)}")
