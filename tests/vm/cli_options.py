"""The command lines of run and matrix: the guest's options, and COMMAND after `--`."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import NoReturn

from guest import VmOptions
from harness_error import HARNESS_FAILURE, warn


class ArgumentParser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        # 2 could be the command's own status; a usage error is the harness's.
        self.print_usage(sys.stderr)
        warn(message)
        sys.exit(HARNESS_FAILURE)


def add_vm_options(parser: argparse.ArgumentParser) -> None:
    defaults = VmOptions()
    parser.add_argument(
        "--timeout",
        type=float,
        default=defaults.timeout_s,
        metavar="S",
        help="seconds the command may run, boot not counted (default %(default)g)",
    )
    parser.add_argument(
        "--mem",
        default=defaults.memory,
        help="guest memory; overlay writes use it (default %(default)s)",
    )
    parser.add_argument(
        "--cpus", type=int, default=defaults.cpus, help="vCPUs (default %(default)d)"
    )
    parser.add_argument(
        "--share",
        action="append",
        default=[],
        metavar="DIR",
        help="host directory the guest sees read-write at the same path, e.g. for junit XML",
    )


def vm_option_args(options: argparse.Namespace) -> list[str]:
    """The options of add_vm_options as a command line again: matrix hands them to run."""
    args = ["--timeout", str(options.timeout), "--mem", options.mem, "--cpus", str(options.cpus)]
    for share in options.share:
        args += ["--share", share]
    return args


def parse_with_command(
    parser: argparse.ArgumentParser, args: Sequence[str]
) -> tuple[argparse.Namespace, list[str]]:
    """Split ARGS at `--`: the harness's options before, the command after."""
    split = args.index("--") if "--" in args else len(args)
    options = parser.parse_args(args[:split])  # first, so that --help works
    if split == len(args):
        parser.error("missing `-- COMMAND...`")
    command = list(args[split + 1 :])
    if not command:
        parser.error("missing COMMAND after `--`")
    for share in options.share:
        if not os.path.isdir(share):
            parser.error(f"--share {share}: not a directory")
    return options, command


def vm_options(options: argparse.Namespace) -> VmOptions:
    return VmOptions(
        timeout_s=options.timeout,
        memory=options.mem,
        cpus=options.cpus,
        shares=tuple(Path(s).resolve() for s in options.share),
    )
