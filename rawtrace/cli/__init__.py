"""The command line: `rawtrace trace`, `rawtrace features`, and COMMAND held until the trace
is attached."""

from rawtrace.cli.command_line import main

__all__ = ["main"]
