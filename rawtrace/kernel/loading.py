"""Loading BPF programs: assemble, load, and on rejection fetch the verifier's log."""

from __future__ import annotations

import errno
import os
from collections.abc import Sequence
from contextlib import ExitStack

from bpf_bytecode import Item, assemble
from rawtrace.errors import VerifierError
from rawtrace.kernel import bpf
from rawtrace.kernel.bpf import AttachType, ProgType
from rawtrace.kernel.fd import OwnedFd
from rawtrace.kernel.privileges import Refused, refusal

# The verifier log of a rejected program; it grows until the log fits (ENOSPC means truncated).
_LOG_SIZES = (1 << 20, 16 << 20)


class Program(OwnedFd):
    """A loaded program, owned: closing it unloads it once no link or perf event holds it."""

    def __init__(self, fd: int, name: str, prog_type: ProgType, code: bytes) -> None:
        super().__init__(fd)
        self.name = name
        self.prog_type = prog_type
        self.code = code


def load_program(
    name: str,
    prog_type: ProgType,
    program: Sequence[Item],
    *,
    expected_attach_type: AttachType = AttachType.NONE,
    attach_btf_id: int = 0,
) -> Program:
    """Load a program. A rejection raises VerifierError with the verifier's log.

    The first try runs without a log, since logging slows the verifier; only a failure is
    loaded again to fetch the explanation (libbpf does the same).
    """
    code = assemble(program)
    try:
        fd = bpf.prog_load(
            prog_type,
            code,
            name,
            expected_attach_type=expected_attach_type,
            attach_btf_id=attach_btf_id,
        )
    except OSError as exc:
        if exc.errno == errno.EPERM:
            raise refusal(f"to load BPF program {name!r}", exc, Refused.BPF) from exc
        raise _rejection(name, prog_type, code, expected_attach_type, attach_btf_id, exc) from exc
    return Program(fd, name, prog_type, code)


class OwnedPrograms:
    """Programs loaded under one name, `<prefix>_<kind>`, each closed with `resources`."""

    def __init__(self, prefix: str, resources: ExitStack) -> None:
        self.prefix = prefix
        self.resources = resources

    def load(
        self,
        kind: str,
        prog_type: ProgType,
        program: Sequence[Item],
        expected_attach_type: AttachType = AttachType.NONE,
        attach_btf_id: int = 0,
    ) -> Program:
        loaded = load_program(
            f"{self.prefix}_{kind}",
            prog_type,
            program,
            expected_attach_type=expected_attach_type,
            attach_btf_id=attach_btf_id,
        )
        return self.resources.enter_context(loaded)


def _rejection(
    name: str,
    prog_type: ProgType,
    code: bytes,
    expected_attach_type: AttachType,
    attach_btf_id: int,
    first: OSError,
) -> VerifierError:
    for size in _LOG_SIZES:
        log = bytearray(size)
        try:
            fd = bpf.prog_load(
                prog_type,
                code,
                name,
                log=log,
                expected_attach_type=expected_attach_type,
                attach_btf_id=attach_btf_id,
            )
        except OSError as exc:
            if exc.errno == errno.ENOSPC and size != _LOG_SIZES[-1]:
                continue
            return VerifierError(name, exc.errno or 0, _log_text(log))
        # Loaded with a log after failing without one: the first error was not the verifier's.
        os.close(fd)
        break
    return VerifierError(name, first.errno or 0, f"load failed: {first.strerror}")


def _log_text(log: bytearray) -> str:
    return log.split(b"\0", 1)[0].decode("utf-8", "replace")
