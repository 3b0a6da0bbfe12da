"""The TaskLayout the programs walk, read from this kernel's BTF: rawtrace's stand-in for CO-RE."""

from __future__ import annotations

import contextlib
import json
import os
from dataclasses import asdict
from pathlib import Path

from bpf_bytecode.programs.task import TaskLayout
from kernel_compat import Btf, FeatureMissing, KernelFactError, Member, boot_id, load_vmlinux_btf


def _pointer(member: Member) -> int:
    if not member.is_pointer:
        raise KernelFactError(f"{member.name} is {member.type_name}, not a pointer, in this BTF")
    return member.offset


def _u32(member: Member) -> int:
    if member.size != 4 or member.bitfield:
        raise KernelFactError(f"{member.name} is {member.type_name}, not 4 bytes, in this BTF")
    return member.offset


def _u64(member: Member) -> int:
    if member.size != 8 or member.bitfield:
        raise KernelFactError(f"{member.name} is {member.type_name}, not 8 bytes, in this BTF")
    return member.offset


def layout_from_btf(btf: Btf) -> TaskLayout:
    numbers = btf.field("pid", "numbers")
    return TaskLayout(
        task_real_parent=_pointer(btf.field("task_struct", "real_parent")),
        task_group_leader=_pointer(btf.field("task_struct", "group_leader")),
        task_tgid=_u32(btf.field("task_struct", "tgid")),
        task_thread_pid=_pointer(btf.field("task_struct", "thread_pid")),
        task_nsproxy=_pointer(btf.field("task_struct", "nsproxy")),
        nsproxy_mnt_ns=_pointer(btf.field("nsproxy", "mnt_ns")),
        mnt_ns_inum=_u32(btf.field("mnt_namespace", "ns.inum")),
        pid_level=_u32(btf.field("pid", "level")),
        pid_numbers=numbers.offset,
        upid_size=numbers.element_size,
        upid_nr=_u32(btf.field("upid", "nr")),
        upid_ns=_pointer(btf.field("upid", "ns")),
        pid_ns_inum=_u32(btf.field("pid_namespace", "ns.inum")),
        task_exit_code=_u32(btf.field("task_struct", "exit_code")),
        task_signal=_pointer(btf.field("task_struct", "signal")),
        signal_live=_u32(btf.field("signal_struct", "live.counter")),
        task_start_time=_u64(btf.field("task_struct", "start_time")),
        task_mm=_pointer(btf.field("task_struct", "mm")),
        mm_arg_start=_u64(btf.field("mm_struct", "arg_start")),
        mm_arg_end=_u64(btf.field("mm_struct", "arg_end")),
    )


# Reading the BTF costs 0.1-0.2 s of every start; the layout cannot change before the next boot,
# and /run is emptied at boot, so a copy there keyed by the boot id is always current.
CACHE = Path("/run/rawtrace/task-layout.json")


def task_layout(cache: Path = CACHE) -> TaskLayout | None:
    """This kernel's layout, or None where it has no BTF (the fields are then reported as 0)."""
    key = boot_id()
    with contextlib.suppress(OSError, ValueError, TypeError, KeyError):
        saved = json.loads(cache.read_text())
        if saved["boot_id"] == key:
            return TaskLayout(**saved["layout"])
    try:
        layout = layout_from_btf(load_vmlinux_btf())
    except FeatureMissing:
        return None
    with contextlib.suppress(OSError):  # not root, or /run read-only: just no cache
        cache.parent.mkdir(mode=0o755, exist_ok=True)
        temporary = cache.with_suffix(f".{os.getpid()}")
        temporary.write_text(json.dumps({"boot_id": key, "layout": asdict(layout)}))
        temporary.replace(cache)
    return layout
