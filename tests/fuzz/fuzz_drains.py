"""A long fuzzing campaign (atheris, coverage-guided) over the ring drains and the decoder.

    python3 tests/fuzz/fuzz_drains.py -atheris_runs=1000000

Each input is a ring (perf or BPF ring buffer) of 64 to 1024 bytes with producer and consumer
positions anywhere in 2**64, mostly near each other. It must end in records or counted
garbage, never a crash or a hang (libFuzzer's -timeout), and the compiled and Python drains
must agree byte for byte, and the decoder must take whatever the drain hands it. pytest does
not collect this file; tests/rawtrace/test_drain_agreement.py runs the same comparison with
hypothesis in CI.
"""

from __future__ import annotations

import sys
from pathlib import Path

import atheris

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "rawtrace"))

with atheris.instrument_imports():
    from test_drain_agreement import perf_outcome, ringbuf_outcome  # the same harness

    from rawtrace.events.decoding import Decoder
    from rawtrace.transports.drain import COMPILED, PYTHON

NEAR = 1 << 12  # producer minus consumer, mostly within a ring's reach


def one_input(data: bytes) -> None:
    fdp = atheris.FuzzedDataProvider(data)
    ringbuf = fdp.ConsumeBool()
    size = 1 << fdp.ConsumeIntInRange(6, 10)
    start = fdp.ConsumeIntInRange(0, 2**64 - 1)
    if fdp.ConsumeIntInRange(0, 7):
        end = (start + fdp.ConsumeIntInRange(0, NEAR)) % 2**64
    else:
        end = fdp.ConsumeIntInRange(0, 2**64 - 1)
    ring = fdp.ConsumeBytes(size).ljust(size, b"\0")
    outcome = ringbuf_outcome if ringbuf else perf_outcome
    python = outcome(PYTHON, ring, start, end)
    assert COMPILED is not None
    compiled = outcome(COMPILED, ring, start, end)
    if python != compiled:
        raise AssertionError(f"the drains disagree: {python!r} != {compiled!r}")
    Decoder().decode(python[0])


def main() -> None:
    if COMPILED is None:
        sys.exit("the compiled drain is not built: nothing to compare the Python drain with")
    atheris.Setup(sys.argv, one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
