"""The one module that touches the FFI: raw bpf(), perf_event_open() and mount() through libc.

Two backends call libc's variadic syscall() with every argument as a long, which is how the
kernel's syscall ABI takes them on every 64-bit architecture: cffi in ABI mode (no compiler
needed) where cffi is installed, else ctypes from the standard library, so that a host with
nothing but Python still traces.
"""

from __future__ import annotations

import ctypes
import os
from typing import Any

from kernel_compat import FeatureMissing, syscall_number


def _syscall_number(name: str) -> int:
    # From the one syscall table per architecture (kernel_compat/arch/syscall_tables.py).
    try:
        return syscall_number(name)
    except FeatureMissing as exc:
        raise OSError(f"rawtrace cannot call {name}: {exc}") from None


_NR_BPF = _syscall_number("bpf")
_NR_PERF_EVENT_OPEN = _syscall_number("perf_event_open")


class _CffiBackend:
    name = "cffi"

    def __init__(self) -> None:
        import cffi

        self._ffi = cffi.FFI()
        self._ffi.cdef(
            "long syscall(long number, ...);"
            "int mount(const char *source, const char *target, const char *fstype,"
            "          unsigned long flags, const void *data);"
        )
        self._libc: Any = self._ffi.dlopen(None)

    def syscall(self, number: int, *args: int) -> int:
        return int(self._libc.syscall(number, *(self._ffi.cast("long", arg) for arg in args)))

    def address_of(self, buffer: bytearray) -> int:
        return int(self._ffi.cast("uintptr_t", self._ffi.from_buffer(buffer)))

    def errno(self) -> int:
        return int(self._ffi.errno)

    def mount(self, source: bytes, target: bytes, fstype: bytes) -> int:
        return int(self._libc.mount(source, target, fstype, 0, self._ffi.NULL))


class _CtypesBackend:
    name = "ctypes"

    def __init__(self) -> None:
        self._libc: Any = ctypes.CDLL(None, use_errno=True)
        self._libc.syscall.restype = ctypes.c_long
        self._libc.mount.argtypes = (
            *(ctypes.c_char_p,) * 3,
            ctypes.c_ulong,
            ctypes.c_void_p,
        )

    def syscall(self, number: int, *args: int) -> int:
        return int(self._libc.syscall(*(ctypes.c_long(arg) for arg in (number, *args))))

    def address_of(self, buffer: bytearray) -> int:
        return ctypes.addressof((ctypes.c_char * len(buffer)).from_buffer(buffer))

    def errno(self) -> int:
        return ctypes.get_errno()

    def mount(self, source: bytes, target: bytes, fstype: bytes) -> int:
        return int(self._libc.mount(source, target, fstype, 0, None))


def _backend() -> _CffiBackend | _CtypesBackend:
    try:
        return _CffiBackend()
    except ImportError:
        return _CtypesBackend()


_BACKEND = _backend()
BACKEND = _BACKEND.name
"""Which FFI makes the calls: "cffi", or "ctypes" where cffi is not installed."""


def address_of(buffer: bytearray) -> int:
    """The address of a bytearray's storage, for pointers inside attribute structs.

    It stays valid while the bytearray lives and is not resized; callers keep it referenced
    for the duration of the syscall that reads it.
    """
    return _BACKEND.address_of(buffer)


def _syscall(number: int, *args: int) -> int:
    result = _BACKEND.syscall(number, *args)
    if result < 0:
        err = _BACKEND.errno()
        raise OSError(err, os.strerror(err))
    return result


def bpf(cmd: int, attr: bytearray) -> int:
    """bpf(cmd, &attr, sizeof(attr)); raises OSError with the kernel's errno."""
    return _syscall(_NR_BPF, cmd, address_of(attr), len(attr))


def perf_event_open(attr: bytearray, pid: int, cpu: int, group_fd: int, flags: int) -> int:
    """perf_event_open(&attr, pid, cpu, group_fd, flags); raises OSError with the kernel's errno."""
    return _syscall(_NR_PERF_EVENT_OPEN, address_of(attr), pid, cpu, group_fd, flags)


def mount(source: str, target: str, fstype: str) -> None:
    """mount(2) with no flags or data; raises OSError with the kernel's errno."""
    if _BACKEND.mount(source.encode(), target.encode(), fstype.encode()) != 0:
        err = _BACKEND.errno()
        raise OSError(err, f"mount {fstype} on {target}: {os.strerror(err)}")
