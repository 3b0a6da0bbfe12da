"""The process tree of `--summary`, fed constructed events: who created whom, in either order."""

from __future__ import annotations

from rawtrace import Arg, Event, ProcessTree
from rawtrace.outputs.process_tree import CLONE_THREAD, CLONE_VFORK, with_summary_events

PID_NS = 4026531836
MS = 1_000_000


def event(
    name: str,
    caller: int,
    comm: str,
    at_ms: int,
    ret: int = 0,
    start_ms: int = 0,
    pid_ns: int = PID_NS,
    **args: object,
) -> Event:
    return Event(
        timestamp=at_ms * MS,
        call_start=start_ms * MS,
        processor_id=0,
        process_id=caller,
        thread_id=caller,
        host_process_id=caller,
        host_thread_id=caller,
        user_id=0,
        process_name=comm,
        cgroup_id=1,
        event_id=0,
        event_name=name,
        syscall=name,
        return_value=ret,
        args=tuple(Arg(key, "int", value) for key, value in args.items()),  # type: ignore[arg-type]
        pid_namespace=pid_ns,
    )


def exit_(pid: int, comm: str, at_ms: int, code: int, signal: int = 0) -> Event:
    return event("exit", pid, comm, at_ms, exit_code=code, signal_code=signal, core_dumped=False)


def execve(pid: int, comm: str, at_ms: int, path: str, ret: int = 0) -> Event:
    return event("execve", pid, comm, at_ms, ret, start_ms=at_ms - 1, pathname=path)


def test_a_three_level_tree_whose_children_report_before_their_creation() -> None:
    tree = ProcessTree()
    tree.add_all(
        [
            execve(100, "sh", 1, "/bin/sh"),
            # glibc's fork: clone without CLONE_VM; the child exits before the return is seen
            exit_(101, "sh", 2, 3),
            event("clone", 100, "sh", 3, ret=101, start_ms=1, flags=0x1200011),
            # a vfork: the child execs, which releases the parent, then exits later
            execve(102, "python3", 5, "/usr/bin/python3"),
            event("vfork", 100, "sh", 6, ret=102, start_ms=4, pid=102),
            event("fork", 102, "python3", 8, ret=103, start_ms=7),
            exit_(103, "python3", 9, 5),
            # posix_spawn: clone(CLONE_VM | CLONE_VFORK); the hold comes from the new arg
            execve(104, "true", 11, "/bin/true"),
            event("clone", 102, "python3", 12, ret=104, start_ms=10, flags=0x4100, hold_ns=MS),
            exit_(104, "true", 13, 0),
            # a thread: not a process of its own
            event("clone", 102, "python3", 14, ret=105, start_ms=13, flags=0x3D0F00),
            exit_(102, "python3", 20, 4),
            exit_(100, "sh", 21, 6),
        ]
    )
    assert tree.render().splitlines() == [
        "100 sh: exec /bin/sh, exit 6",
        "├─101 sh: clone, exit 3, lived 1.000 ms",
        "└─102 python3: vfork (held the parent 2.000 ms), exec /usr/bin/python3, exit 4, "
        "lived 16.000 ms",
        "  ├─103 python3: fork, exit 5, lived 2.000 ms",
        "  └─104 true: clone(CLONE_VFORK) (held the parent 1.000 ms), exec /bin/true, exit 0, "
        "lived 3.000 ms",
    ]
    (root,) = tree.roots()
    python = root.children[1]
    assert (python.pid, python.parent, python.held_parent_ns) == (102, root, 2 * MS)
    assert [c.pid for c in python.children] == [103, 104]
    assert CLONE_VFORK == 0x4000 and CLONE_THREAD == 0x10000


def test_a_creation_seen_before_the_child_names_it_after_its_parent() -> None:
    tree = ProcessTree()
    tree.add(event("fork", 10, "make", 1, ret=11, start_ms=1))
    tree.add(event("vfork", 10, "make", 2, ret=12))  # entry not seen: no hold, no call start
    assert tree.render().splitlines() == [
        "10 make: no exit seen",
        "├─11 make: fork, no exit seen",
        "└─12 make: vfork, no exit seen",
    ]


def test_failures_and_new_namespaces_create_nothing() -> None:
    tree = ProcessTree()
    tree.add(event("fork", 10, "a", 1, ret=-11))  # EAGAIN
    tree.add(execve(10, "a", 2, "/nonexistent", ret=-2))
    tree.add(event("clone", 10, "a", 3, ret=20, start_ms=3, flags=0x20000000))  # CLONE_NEWPID
    tree.add(execve(1, "init", 4, "/sbin/init", ret=0)._replace(pid_namespace=42))
    assert tree.render().splitlines() == [
        "10 a: no exit seen",
        "└─20 a: clone, no exit seen",
        "1 init: exec /sbin/init, no exit seen",
    ]


def test_clone3_children_count_once_they_act_as_processes() -> None:
    tree = ProcessTree()
    tree.add(event("clone3", 10, "app", 1, ret=11, start_ms=1))  # a thread (never acts alone)
    tree.add(event("clone3", 20, "old", 1, ret=21, start_ms=1))  # another's thread
    tree.add(exit_(20, "old", 2, 0))  # its process ends, and the thread with it
    tree.add(execve(21, "reused", 3, "/bin/reused"))  # so its tid, reused, is someone else
    tree.add(event("clone3", 10, "app", 2, ret=12, start_ms=2))  # a process of its own
    tree.add(execve(12, "ls", 3, "/bin/ls"))
    tree.add(exit_(12, "ls", 4, 0, signal=-1))  # fed by exit_group(): no signal seen
    # posix_spawn: its child releases the parent (exec) before the parent's return is seen
    tree.add(execve(13, "ls", 5, "/bin/ls"))
    tree.add(event("clone3", 10, "app", 6, ret=13, start_ms=4, vfork=True, hold_ns=None))
    assert tree.render().splitlines() == [
        "10 app: no exit seen",
        "├─12 ls: clone3, exec /bin/ls, exit 0, lived 2.000 ms",
        "└─13 ls: clone3(CLONE_VFORK) (held the parent 2.000 ms), exec /bin/ls, no exit seen",
        "20 old: exit 0",
        "21 reused: exec /bin/reused, no exit seen",
    ]


def test_clone3_flags_tell_threads_from_processes_at_once() -> None:
    tree = ProcessTree()
    tree.add(event("clone3", 10, "app", 1, ret=11, start_ms=1, flags=0x3D0F00))  # a thread
    tree.add(event("clone3", 10, "app", 2, ret=12, start_ms=1, flags=0))  # a process
    assert tree.render().splitlines() == [
        "10 app: no exit seen",
        "└─12 app: clone3, no exit seen",
    ]


def test_a_death_by_signal_where_the_exit_event_tells_it() -> None:
    tree = ProcessTree()
    tree.add(exit_(10, "sleep", 1, 0, signal=9))
    assert tree.render() == "10 sleep: killed by SIGKILL\n"


def test_comm_escaped_like_the_table() -> None:
    tree = ProcessTree()
    tree.add(exit_(10, "evil\x1b[2J", 1, 0))
    assert tree.render() == "10 evil\\x1b[2J: exit 0\n"


def test_the_summary_adds_the_lifecycle_events_after_the_users() -> None:
    assert with_summary_events(["exit", "vfork"]) == [
        "exit",
        "vfork",
        "fork",
        "clone",
        "clone3",
        "execve",
        "execveat",
    ]


def test_two_pid_namespaces_keep_their_pids_apart() -> None:
    # two containers, each with its pid 1 forking its pid 2: four processes, two trees
    tree = ProcessTree()
    for ns, comm, at in ((PID_NS + 1, "one", 1), (PID_NS + 2, "two", 11)):
        tree.add_all(
            [
                execve(1, comm, at, f"/bin/{comm}")._replace(pid_namespace=ns),
                event("fork", 1, comm, at + 2, ret=2, start_ms=at + 1, pid_ns=ns),
                exit_(2, comm, at + 4, 3)._replace(pid_namespace=ns),
            ]
        )
    assert tree.render().splitlines() == [
        "1 one: exec /bin/one, no exit seen",
        "└─2 one: fork, exit 3, lived 3.000 ms",
        "1 two: exec /bin/two, no exit seen",
        "└─2 two: fork, exit 3, lived 3.000 ms",
    ]


def test_children_in_creation_order_with_lifetimes_in_ms_and_s() -> None:
    tree = ProcessTree()
    tree.add_all(
        [
            event("fork", 10, "a", 1, ret=0),  # a child's own return: it creates nothing
            event("fork", 10, "a", 5, ret=13, start_ms=4),  # seen before 11's, created after
            event("fork", 10, "a", 2, ret=11, start_ms=1),
            event("fork", 11, "a", 3, ret=12, start_ms=2),
            event("fork", 10, "a", 6, ret=14, start_ms=6),
            exit_(11, "a", 1_000, 0),
            exit_(12, "a", 1_003, 0),
            exit_(13, "a", 1_004, 0),
            exit_(14, "a", 1_000_006, 0),
        ]
    )
    assert tree.render().splitlines() == [
        "10 a: no exit seen",
        "├─11 a: fork, exit 0, lived 999.000 ms",
        "│ └─12 a: fork, exit 0, lived 1.001 s",
        "├─13 a: fork, exit 0, lived 1.000 s",
        "└─14 a: fork, exit 0, lived 1000.000 s",
    ]
