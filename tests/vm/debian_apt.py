"""Debian packages through a private apt state, from the mirror the host's apt config names.

The system's apt config and lists are never touched; the kernel cache (kernels.py) keeps
one state per kernel of the list.
"""

from __future__ import annotations

import dataclasses
import re
import shlex
import subprocess
from collections.abc import Iterator, Sequence
from pathlib import Path

from harness_error import HarnessError


@dataclasses.dataclass(frozen=True)
class AptSource:
    uri: str
    suites: tuple[str, ...]
    signed_by: str


def _host_apt_sources() -> Iterator[AptSource]:
    """Every `deb` entry of the host's apt config, in both file formats."""
    etc = Path("/etc/apt")
    one_line = [etc / "sources.list", *sorted((etc / "sources.list.d").glob("*.list"))]
    for path in one_line:
        for raw in path.read_text().splitlines() if path.is_file() else []:
            m = re.match(r"\s*deb\s+(?:\[([^]]*)\]\s+)?(\S+)\s+(\S+)", raw)
            if m:
                options = dict(o.split("=", 1) for o in (m[1] or "").split() if "=" in o)
                yield AptSource(m[2], (m[3],), options.get("signed-by", ""))
    for path in sorted((etc / "sources.list.d").glob("*.sources")):
        for paragraph in re.split(r"\n\s*\n", path.read_text()):
            matches = re.findall(r"^([\w-]+):[ \t]*(.*)$", paragraph, re.MULTILINE)
            fields = {key.lower(): value for key, value in matches}
            if "deb" not in fields.get("types", "").split() or fields.get("enabled") == "no":
                continue
            suites = tuple(fields.get("suites", "").split())
            for uri in fields.get("uris", "").split():
                yield AptSource(uri, suites, fields.get("signed-by", ""))


def mirror_for(suite: str) -> AptSource:
    """The host's Debian mirror for SUITE: its security entry for `*-security`.

    Debian entries are told from third-party ones by naming the host's own
    release (bookworm, bookworm-updates, ...); `nodistro` or
    `cloud-sdk-bookworm` do not.
    """
    codename = ""
    for line in Path("/etc/os-release").read_text().splitlines():
        if line.startswith("VERSION_CODENAME="):
            codename = line.split("=", 1)[1].strip('"')
    want_security = suite.endswith("-security")
    for source in _host_apt_sources():
        for s in source.suites:
            if s.split("-")[0] == codename and s.endswith("-security") == want_security:
                return source
    kind = "security" if want_security else "main"
    raise HarnessError(f"no Debian {kind} mirror for {codename!r} found in /etc/apt sources")


class PrivateApt:
    """apt-get and apt-cache on their own lists, leaving the system's apt alone."""

    def __init__(self, state: Path, suites: Sequence[str], arch: str = "amd64") -> None:
        self.state = state
        self.arch = arch
        (state / "lists" / "partial").mkdir(parents=True, exist_ok=True)
        (state / "cache" / "archives" / "partial").mkdir(parents=True, exist_ok=True)
        lines = []
        for suite in suites:
            mirror = mirror_for(suite)
            options = f"arch={arch}"
            # A keyring file; an inline key block cannot go into a one-line
            # sources.list, and apt's default keyrings then have to do.
            if mirror.signed_by.startswith("/"):
                options += f" signed-by={mirror.signed_by}"
            lines.append(f"deb [{options}] {mirror.uri} {suite} main\n")
        (state / "sources.list").write_text("".join(lines))

    def _options(self) -> list[str]:
        settings = {
            "Dir::Etc::SourceList": self.state / "sources.list",
            "Dir::Etc::SourceParts": "/dev/null",
            "Dir::State::Lists": self.state / "lists",
            "Dir::Cache": self.state / "cache",
            "Dir::State": self.state,
            "Dir::State::status": "/dev/null",
            # apt's own architecture, not the host dpkg's: no foreign architecture is added.
            "APT::Architecture": self.arch,
            "APT::Architectures": self.arch,
            "Acquire::Languages": "none",
            # Root-owned cache dirs: the _apt sandbox user could not write there.
            "APT::Sandbox::User": "root",
        }
        return [arg for key, value in settings.items() for arg in ("-o", f"{key}={value}")]

    def _run(self, tool: str, *args: str, cwd: Path | None = None) -> str:
        command = [tool, *self._options(), *args]
        proc = subprocess.run(command, cwd=cwd, capture_output=True, text=True, check=False)
        if proc.returncode != 0:
            raise HarnessError(
                f"{shlex.join([tool, *args])} failed (exit {proc.returncode}):\n"
                + proc.stdout
                + proc.stderr
            )
        return proc.stdout

    def update(self) -> None:
        # Without --error-on=any a suite that failed to download is only a warning.
        self._run("apt-get", "update", "--error-on=any")

    def package_names(self, prefix: str) -> set[str]:
        return set(self._run("apt-cache", "pkgnames", prefix).split())

    def download(self, packages: Sequence[str], dest: Path) -> None:
        self._run("apt-get", "download", *packages, cwd=dest)

    def download_with_dependencies(self, packages: Sequence[str]) -> list[Path]:
        """PACKAGES and everything they depend on (not recommend), as for an empty system;
        the .debs are kept in the state's archives."""
        self._run(
            "apt-get",
            "install",
            "--download-only",
            "--no-install-recommends",
            "--yes",
            # the host's dpkg lock is not ours to take: nothing is installed
            "-o",
            "Debug::NoLocking=1",
            *packages,
        )
        return sorted((self.state / "cache" / "archives").glob("*.deb"))
