"""Transports: how records travel from the programs to user space. The perf rings and the
BPF ring buffer, their pure ring arithmetic, the drains (Python and C), and failed-output counts."""
