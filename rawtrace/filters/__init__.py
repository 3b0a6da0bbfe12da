"""Filters: building what the user filters on into what the programs compile in, placing each
kind in the kernel or in user space, and following a process tree."""
