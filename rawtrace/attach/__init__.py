"""Attach families: one module each, all on the perf-event core in perf_event.py."""
