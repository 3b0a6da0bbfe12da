"""Mutation testing of rawtrace's core modules (mutmut), each against the unit tests that cover
it: a campaign of its own, like tests/fuzz, not part of CI (a module takes minutes to an hour).

    python3 -m pip install mutmut
    python3 tests/mutation/run.py rawtrace/events/decoding.py rawtrace/outputs/formats.py
    python3 tests/mutation/run.py --all

Each module runs in a copy of the checkout (tracked files and the compiled drain) in a temporary
directory: mutmut writes its mutants/ beside the sources and reads its configuration from the
setup.cfg this script writes there, so the checkout stays untouched. The score is mutmut's:
killed (timeouts included) over the mutants tested; the survivors are listed by name, and
`--keep` leaves the copy so that `mutmut show NAME` there prints one. pytest does not collect
this file.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DRAIN = "rawtrace/transports/_perf_drain.abi3.so"  # built, not tracked
UNIT = ["-m", "not live and not vm", "-p", "no:cacheprovider", "-q"]

# each core module, and the unit tests that exercise it
MODULES = {
    "rawtrace/events/decoding.py": [
        "tests/rawtrace/test_decode_output.py",
        "tests/rawtrace/test_exit_decode.py",
        "tests/rawtrace/test_drain_agreement.py",
    ],
    "rawtrace/events/catalogue.py": [
        "tests/rawtrace/test_decode_output.py",
        "tests/rawtrace/test_exit_decode.py",
    ],
    "rawtrace/outputs/formats.py": ["tests/rawtrace/test_decode_output.py"],
    "rawtrace/outputs/process_tree.py": ["tests/rawtrace/test_summary.py"],
    "rawtrace/transports/perf_ring.py": [
        "tests/rawtrace/test_perf_ring.py",
        "tests/rawtrace/test_drain_agreement.py",
    ],
    "rawtrace/transports/ringbuf_ring.py": [
        "tests/rawtrace/test_ringbuf_ring.py",
        "tests/rawtrace/test_drain_agreement.py",
    ],
    "bpf_bytecode/asm.py": ["tests/bpf_bytecode"],
    "bpf_bytecode/programs/filters.py": [
        "tests/bpf_bytecode",
        "tests/rawtrace/test_user_filters.py",
    ],
    "kernel_compat/btf/queries.py": ["tests/kernel_compat/test_kernel_btf.py"],
}
# mutmut's exit codes (mutmut/stats.py): 1 and 3 killed, 0 survived, timeouts count as killed
KILLED = {1, 3, 36, -24, 24, 152, 255}
NOT_TESTED = {None, 5, 33, 34}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("modules", nargs="*", help=f"of: {', '.join(MODULES)}")
    parser.add_argument("--all", action="store_true", help="every module above")
    parser.add_argument("--keep", action="store_true", help="keep each module's copy")
    parser.add_argument("--max-children", type=int, default=2)
    args = parser.parse_args()
    modules = list(MODULES) if args.all else args.modules
    unknown = [m for m in modules if m not in MODULES]
    if not modules or unknown:
        parser.error(f"name modules of: {', '.join(MODULES)}")
    if shutil.which("mutmut") is None:
        sys.exit("mutmut is not installed: python3 -m pip install mutmut")
    scores = [mutate(module, args.keep, args.max_children) for module in modules]
    print()
    for module, (killed, tested, survivors) in zip(modules, scores):
        score = 100 * killed / tested if tested else 0.0
        print(f"{module}: {killed}/{tested} killed, {score:.1f}%")
        for name in survivors:
            print(f"    survived: {name}")
    return 0


def mutate(module: str, keep: bool, max_children: int) -> tuple[int, int, list[str]]:
    """Run mutmut over one module in a copy of the checkout: (killed, tested, survivors)."""
    copy = Path(tempfile.mkdtemp(prefix="rawtrace-mutmut-"))
    try:
        tracked = subprocess.run(
            ["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True
        ).stdout.split(b"\0")
        for name in [*(t.decode() for t in tracked if t), DRAIN]:
            if (ROOT / name).is_file():
                (copy / name).parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(ROOT / name, copy / name)
        lines = ["[mutmut]", f"paths_to_mutate = {module}", "tests_dir ="]
        lines += [f"    {tests}" for tests in MODULES[module]]
        lines += ["also_copy ="] + [f"    {p}" for p in ("rawtrace", "bpf_bytecode",
                                                        "kernel_compat", "tests")]  # fmt: skip
        lines += ["pytest_add_cli_args ="] + [f"    {arg}" for arg in UNIT]
        (copy / "setup.cfg").write_text("\n".join(lines) + "\n")
        print(f"== {module} (in {copy})", flush=True)
        subprocess.run(["mutmut", "run", "--max-children", str(max_children)], cwd=copy)
        meta = json.loads((copy / "mutants" / f"{module}.meta").read_text())
        codes: dict[str, int | None] = meta["exit_code_by_key"]
        tested = {name: code for name, code in codes.items() if code not in NOT_TESTED}
        killed = sum(1 for code in tested.values() if code in KILLED)
        survivors = sorted(name for name, code in tested.items() if code not in KILLED)
        return killed, len(tested), survivors
    finally:
        if keep:
            print(f"kept {copy}")
        else:
            shutil.rmtree(copy, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
