"""Every program builder's disassembly, pinned in golden files (tests/bpf_bytecode/golden/).

The cases cover each builder with representative arguments: fixed fake map fds, each filter
kind, with and without the task layout, each output, each tail shape, every event's capture
from rawtrace's catalogue (copied here, so that bpf_bytecode is tested alone), and the context
readers of each attach family (x86_64 offsets).

After an intended change, rewrite the files with BPF_GOLDEN_UPDATE=1 and read the diff.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Callable

import pytest

from bpf_bytecode import R10, Helper, Insn, InsnClass, Item, assemble, disassemble
from bpf_bytecode.asm import mov64_reg
from bpf_bytecode.opcodes import LD_IMM64, AluOp, Reg, Source
from bpf_bytecode.programs.capture import (
    ArgsInContext,
    ArgsInUserRegs,
    Capture,
    ExecStrings,
    FirstU64,
    SyscallArgs,
    UserString,
)
from bpf_bytecode.programs.exec_facts import ExecRecord, exec_event, fix_exec_records
from bpf_bytecode.programs.filters import Filters
from bpf_bytecode.programs.follow import follow_forks, forget_frees
from bpf_bytecode.programs.output import Output, PerfOutput, RingbufOutput
from bpf_bytecode.programs.process_exit import GroupDeadField, LastThread, process_exit
from bpf_bytecode.programs.syscall import (
    RAW_ARG_REGS,
    Tail,
    raw_syscall_enter_match,
    raw_syscall_exit_ret,
    ret_at,
    syscall_enter,
    syscall_entry_event,
    syscall_exit,
)
from bpf_bytecode.programs.task import TaskLayout
from bpf_bytecode.programs.tracepoint_copy import CtxCopy, CtxString, tracepoint_copy
from bpf_bytecode.programs.vfork import (
    Cause,
    HeldWhen,
    Hold,
    VforkMaps,
    exec_path_from_kernel,
    exec_returned,
    note_child,
    note_signal,
    release_at_exec,
    release_at_exit,
    release_at_signal,
)

GOLDEN = Path(__file__).parent / "golden"
UPDATE = os.environ.get("BPF_GOLDEN_UPDATE") == "1"

# fake map fds, distinct so that the disassembly shows which map each load names
START_TIMES, SCRATCH, EVENTS, LOST, RINGBUF, FOLLOWED, HOLDS, CHILDREN, REPORTED = range(3, 12)
PERF: Output = PerfOutput(EVENTS, LOST)
RING: Output = RingbufOutput(RINGBUF, LOST)
VFORK = VforkMaps(HOLDS, CHILDREN)

FILTERS = {
    "none": Filters(),
    "pids": Filters(pids=(1, 4242)),
    "tids": Filters(tids=(77,)),
    "uids": Filters(uids=(0, 1000)),
    "comms": Filters(comms=(b"bash", b"a-fifteen-byte!")),
    "cgroups": Filters(cgroups=(5, 1 << 40)),  # a wide id needs a register
    "followed": Filters(followed_fd=FOLLOWED),
    "all": Filters(
        pids=(1,), tids=(2,), uids=(3,), comms=(b"sh",), cgroups=(4,), followed_fd=FOLLOWED
    ),
}

TASK = TaskLayout(
    task_real_parent=1432,
    task_group_leader=1464,
    task_tgid=1420,
    task_thread_pid=1528,
    task_nsproxy=1856,
    nsproxy_mnt_ns=24,
    mnt_ns_inum=16,
    pid_level=4,
    pid_numbers=64,
    upid_size=16,
    upid_nr=0,
    upid_ns=8,
    pid_ns_inum=200,
    task_exit_code=1380,
    task_signal=1848,
    signal_live=4,
    task_start_time=1648,
    task_mm=1136,
    mm_arg_start=488,
    mm_arg_end=496,
)

# x86_64's pt_regs: di, si, dx, r10, r8, r9; ax holds the return value, orig_ax the number
SYSCALL_REGS = (112, 104, 96, 56, 72, 64)
PT_REGS_AX, PT_REGS_ORIG_AX = 80, 120


class Family:
    """How an attach family reads its context (rawtrace/attach/*.py), for one syscall."""

    def __init__(self, match: Sequence[Item], args: SyscallArgs, load_ret: Sequence[Item]) -> None:
        self.match = list(match)
        self.args = args
        self.load_ret = list(load_ret)


def tracepoint() -> Family:
    return Family((), ArgsInContext((16, 24, 32, 40, 48, 56)), ret_at(16))


def raw(nrs: Sequence[int], probe_read: Helper = Helper.PROBE_READ_KERNEL) -> Family:
    return Family(
        raw_syscall_enter_match(nrs[0]),
        ArgsInUserRegs(RAW_ARG_REGS, SYSCALL_REGS, probe_read),
        raw_syscall_exit_ret(nrs, PT_REGS_ORIG_AX, 8, probe_read),
    )


def kprobe_wrapper() -> Family:
    return Family((), ArgsInUserRegs(112, SYSCALL_REGS, Helper.PROBE_READ_KERNEL), ret_at(80))


def kprobe_plain() -> Family:
    return Family((), ArgsInContext((112, 104, 96, 88, 72, 64)), ret_at(80))


# the catalogue's syscall events (rawtrace/events.py): name, id, capture, holds, child return
EVENTS_CATALOGUE: dict[str, tuple[int, Capture | None, HeldWhen | None, bool]] = {
    "vfork": (58, Capture(), HeldWhen.ALWAYS, True),
    "fork": (57, None, None, True),
    "clone": (56, Capture(arg_count=5), HeldWhen.CLONE_FLAGS, True),
    "clone3": (435, Capture(arg_count=2, fields=(FirstU64(),)), HeldWhen.CLONE_ARGS, True),
    "execve": (59, Capture(arg_count=3, fields=(ExecStrings(0, 1),)), None, False),
    "execveat": (322, Capture(arg_count=5, fields=(ExecStrings(1, 2),)), None, False),
}


def _tail(event: str, with_hold: bool = True) -> Tail | None:
    event_id, capture, holds, _ = EVENTS_CATALOGUE[event]
    if capture is None:
        return None
    hold = Hold(VFORK, event_id, holds) if holds is not None and with_hold else None
    return Tail(capture, SCRATCH, hold)


def enter(event: str, family: Family, filters: str = "none", with_hold: bool = True) -> list[Item]:
    return syscall_enter(
        match=family.match,
        start_times_fd=START_TIMES,
        filters=FILTERS[filters],
        args=family.args,
        tail=_tail(event, with_hold),
    )


def leave(
    event: str,
    family: Family,
    filters: str = "none",
    output: Output = PERF,
    task: TaskLayout | None = None,
    with_hold: bool = True,
) -> list[Item]:
    event_id, _, _, skip_child = EVENTS_CATALOGUE[event]
    return syscall_exit(
        load_ret=family.load_ret,
        start_times_fd=START_TIMES,
        output=output,
        event_id=event_id,
        skip_child_return=skip_child,
        filters=FILTERS[filters],
        task=task,
        tail=_tail(event, with_hold),
    )


def exit_group(family: Family, filters: str, output: Output, task: TaskLayout | None) -> list[Item]:
    return syscall_entry_event(
        match=family.match,
        args=family.args,
        output=output,
        event_id=60,
        filters=FILTERS[filters],
        task=task,
        tail=Tail(Capture(arg_count=1), SCRATCH),
    )


def exit_process(end: GroupDeadField | LastThread, filters: str, output: Output) -> list[Item]:
    return process_exit(
        end=end,
        output=output,
        event_id=1002,
        filters=FILTERS[filters],
        task=TASK,
        tail=Tail(Capture(arg_count=1), SCRATCH),
    )


CASES: dict[str, Callable[[], list[Item]]] = {
    # events without a tail, through each family, with each filter kind
    **{
        f"fork_enter_tp_{kind}": (lambda kind=kind: enter("fork", tracepoint(), kind))
        for kind in FILTERS
    },
    **{
        f"fork_exit_tp_{kind}": (lambda kind=kind: leave("fork", tracepoint(), kind))
        for kind in FILTERS
    },
    "fork_exit_tp_task": lambda: leave("fork", tracepoint(), task=TASK),
    "fork_exit_tp_ringbuf_task_all": lambda: leave("fork", tracepoint(), "all", RING, TASK),
    "fork_enter_raw": lambda: enter("fork", raw([57])),
    "fork_exit_raw": lambda: leave("fork", raw([57])),
    "fork_exit_raw_probe_read": lambda: leave("fork", raw([57], Helper.PROBE_READ)),
    "fork_exit_raw_nr32": lambda: syscall_exit(
        load_ret=raw_syscall_exit_ret([220], 264, 4, Helper.PROBE_READ_KERNEL),
        start_times_fd=START_TIMES,
        output=PERF,
        event_id=57,
        skip_child_return=True,
    ),
    "fork_enter_kprobe": lambda: enter("fork", kprobe_wrapper()),
    "fork_exit_kprobe": lambda: leave("fork", kprobe_wrapper()),
    # events with a tail: each capture of the catalogue, each family's way to the args
    **{
        f"{event}_enter_{name}": (lambda event=event, family=family: enter(event, family()))
        for event in ("vfork", "clone", "clone3", "execve", "execveat")
        for name, family in (
            ("tp", tracepoint),
            ("raw", lambda: raw([0])),
            ("kprobe", kprobe_wrapper),
            ("kprobe_plain", kprobe_plain),
        )
    },
    **{
        f"{event}_exit_tp": (lambda event=event: leave(event, tracepoint()))
        for event in ("vfork", "clone", "clone3", "execve", "execveat")
    },
    "clone_enter_tp_no_hold": lambda: enter("clone", tracepoint(), with_hold=False),
    # a declared event's string arg (rawtrace.syscall_event: an int, then a const char*)
    "int_and_string_enter_tp": lambda: syscall_enter(
        start_times_fd=START_TIMES,
        args=tracepoint().args,
        tail=Tail(Capture(arg_count=2, fields=(UserString(1, 256),)), SCRATCH),
    ),
    "clone_exit_tp_no_hold": lambda: leave("clone", tracepoint(), with_hold=False),
    "vfork_enter_tp_comms": lambda: enter("vfork", tracepoint(), "comms"),
    "vfork_enter_tp_all": lambda: enter("vfork", tracepoint(), "all"),
    "vfork_exit_tp_all_task_ringbuf": lambda: leave("vfork", tracepoint(), "all", RING, TASK),
    "clone3_exit_raw_task": lambda: leave("clone3", raw([435]), task=TASK),
    "execve_exit_tp_all_task": lambda: leave("execve", tracepoint(), "all", PERF, TASK),
    "execveat_exit_raw_ringbuf": lambda: leave("execveat", raw([322, 59]), output=RING),
    # a call that does not return: its record goes at entry
    "exit_group_tp": lambda: exit_group(tracepoint(), "none", PERF, None),
    "exit_group_raw_all_task_ringbuf": lambda: exit_group(raw([231]), "all", RING, TASK),
    "exit_group_kprobe_comms": lambda: exit_group(kprobe_wrapper(), "comms", PERF, None),
    # the exit event on sched_process_exit
    "process_exit_group_dead": lambda: exit_process(GroupDeadField(32), "none", PERF),
    "process_exit_group_dead_all_ringbuf": lambda: exit_process(GroupDeadField(32), "all", RING),
    "process_exit_last_thread": lambda: exit_process(LastThread(REPORTED), "none", PERF),
    "process_exit_last_thread_all": lambda: exit_process(LastThread(REPORTED), "all", RING),
    # vfork's watchers
    "vfork_note_child": lambda: note_child(VFORK, 44),
    "vfork_note_signal": lambda: note_signal(VFORK, 8, 36, 44),
    "vfork_release_at_signal": lambda: release_at_signal(VFORK, 8, 24),
    **{
        f"vfork_release_at_{syscall}_{name}": (
            lambda family=family, path_arg=path_arg, cause=cause: release_at_exec(
                VFORK, family().match, family().args, path_arg, cause
            )
        )
        for syscall, path_arg, cause in (
            ("execve", 0, Cause.EXECVE),
            ("execveat", 1, Cause.EXECVEAT),
        )
        for name, family in (("tp", tracepoint), ("raw", lambda: raw([59])))
    },
    "vfork_release_at_exit_tp": lambda: release_at_exit(VFORK, (), tracepoint().args),
    "vfork_release_at_exit_raw": lambda: release_at_exit(VFORK, raw([231]).match, raw([231]).args),
    "vfork_exec_returned_tp": lambda: exec_returned(VFORK, tracepoint().load_ret),
    "vfork_exec_returned_raw": lambda: exec_returned(VFORK, raw([59, 322]).load_ret),
    "vfork_exec_path_from_kernel": lambda: exec_path_from_kernel(VFORK, 12),
    # exec facts on sched_process_exec: the exec events' noted tails, and the event
    "exec_facts_fix": lambda: fix_exec_records(
        [ExecRecord(START_TIMES, 32), ExecRecord(START_TIMES, 48)], 8, TASK
    ),
    "exec_facts_fix_no_task": lambda: fix_exec_records([ExecRecord(START_TIMES, 32)], 8, None),
    "exec_event_all_task_ringbuf": lambda: exec_event(
        filename_loc=8,
        output=RING,
        event_id=715,
        filters=FILTERS["all"],
        task=TASK,
        tail=Tail(Capture(fields=(ExecStrings(0, 1),)), SCRATCH),
    ),
    "exec_event_perf": lambda: exec_event(
        filename_loc=8,
        output=PERF,
        event_id=715,
        filters=FILTERS["none"],
        task=None,
        tail=Tail(Capture(fields=(ExecStrings(0, 1),)), SCRATCH),
    ),
    # a declared kprobe event (rawtrace.kprobe_event): an int and a kernel string, at entry
    "kprobe_event_int_and_kernel_string": lambda: syscall_entry_event(
        args=kprobe_plain().args,
        output=PERF,
        event_id=70_000,
        filters=FILTERS["none"],
        task=TASK,
        tail=Tail(Capture(arg_count=2, fields=(UserString(1, 256, kernel=True),)), SCRATCH),
    ),
    # a declared tracepoint event: its fields copied from the context
    "tracepoint_copy_all_task": lambda: tracepoint_copy(
        fields=[CtxCopy(8, 4), CtxCopy(20, 16), CtxString(12, 256)],
        output=RING,
        event_id=60_261,
        filters=FILTERS["all"],
        task=TASK,
        tail=Tail(Capture(), SCRATCH, extra=4 + 16 + 264),
    ),
    # following a process tree
    "follow_forks": lambda: follow_forks(FOLLOWED, 44),
    "forget_frees": lambda: forget_frees(FOLLOWED, 24),
}


def _text(program: list[Item]) -> str:
    return "\n".join(disassemble(assemble(program))) + "\n"


@pytest.mark.parametrize("name", sorted(CASES))
def test_program_disassembly_is_pinned(name: str) -> None:
    text = _text(CASES[name]())
    path = GOLDEN / f"{name}.txt"
    if UPDATE:
        GOLDEN.mkdir(exist_ok=True)
        path.write_text(text)
    assert path.exists(), f"no golden file {path.name}: run with BPF_GOLDEN_UPDATE=1"
    assert text == path.read_text(), f"{name}'s disassembly changed; see {path}"


def test_every_golden_file_has_a_case() -> None:
    stale = {path.stem for path in GOLDEN.glob("*.txt")} - set(CASES)
    assert not stale, f"golden files without a case: {sorted(stale)}"


def test_builders_do_not_edit_their_inputs() -> None:
    """The same case built twice gives the same text: nothing shared is consumed."""
    for name in ("execve_exit_tp", "vfork_enter_tp_all", "process_exit_last_thread_all"):
        assert _text(CASES[name]()) == _text(CASES[name]())


def _unnamed_stack_accesses(program: list[Item]) -> list[tuple[int, Insn]]:
    """Loads and stores based on r10, and `r += off` after `r = r10`, that name no slot."""
    insns = [item for item in program if isinstance(item, Insn)]
    add_imm = InsnClass.ALU64 | AluOp.ADD | Source.K  # stack_addr's second instruction
    unnamed = []
    for index, insn in enumerate(insns):
        cls = InsnClass.of(insn.opcode)
        if insn.opcode == LD_IMM64 or insn.slot is not None:
            continue
        base = insn.src if cls == InsnClass.LDX else insn.dst
        if cls in (InsnClass.LDX, InsnClass.ST, InsnClass.STX) and base == Reg.R10:
            unnamed.append((index, insn))
        after = insns[index - 1] if index else None
        if insn.opcode == add_imm and after is not None and after == mov64_reg(insn.dst, R10):
            unnamed.append((index, insn))
    return unnamed


@pytest.mark.parametrize("name", sorted(CASES))
def test_every_stack_access_names_its_slot(name: str) -> None:
    """So the assembler's frame check sees every byte each program uses."""
    assert _unnamed_stack_accesses(CASES[name]()) == []
