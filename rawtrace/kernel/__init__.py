"""The kernel interface: raw syscalls, bpf() commands, perf events, owned fds, maps,
program loading, privileges, the tracefs mount, feature probes and the task layout."""
