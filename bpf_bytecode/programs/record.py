"""The record every program sends to user space: a fixed context, then the event's own fields.

Programs build it on their stack at these offsets and the decoder reads it back with SYSCALL_RECORD;
both take the layout from here, so they cannot drift apart.

    off  size  field
      0     8  ts           bpf_ktime_get_ns() when the event fired (CLOCK_MONOTONIC)
      8     8  start_ts     when the call was entered; 0 if the entry was not seen
     16     8  pid_tgid     tgid << 32 | tid
     24     8  uid_gid      gid << 32 | uid
     32     8  cgroup_id    the cgroup v2 id
     40    16  comm         the task's name, NUL padded
     56     4  event_id     Tracee's event id
     60     4  cpu          the processor the event fired on
     64     4  host_ppid    the parent's tgid                         \
     68     4  ns_pid       tgid in the task's own pid namespace       |  from the task walk
     72     4  ns_tid       tid in that namespace                      |  (task.py), which needs
     76     4  ns_ppid      parent's tgid there, 0 if not visible      |  BTF; 0 without it
     80     4  mnt_ns       mount namespace inode number               |
     84     4  pid_ns       pid namespace inode number                /
     88     8  ret          the syscall's return value (signed)
"""

from __future__ import annotations

import struct

TS = 0
START_TS = 8
PID_TGID = 16
UID_GID = 24
CGROUP_ID = 32
COMM = 40
COMM_SIZE = 16
EVENT_ID = 56
CPU = 60
HOST_PPID = 64
NS_PID = 68
NS_TID = 72
NS_PPID = 76
MNT_NS = 80
PID_NS = 84
RET = 88

SYSCALL_RECORD = struct.Struct("<QQQQQ16sIIIIIIIIq")
"""The record of a syscall event: the context fields above, in order, then ret."""
