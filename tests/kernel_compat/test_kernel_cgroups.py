from __future__ import annotations

import os
from pathlib import Path

import pytest

from kernel_compat import FeatureMissing
from kernel_compat.system.cgroups import (
    cgroup2_mountpoint,
    cgroup_id,
    container_cgroups,
    container_id,
    container_ids,
)

DOCKER = "0123456789abcdef" * 4


@pytest.mark.parametrize(
    "path",
    [
        f"/system.slice/docker-{DOCKER}.scope",
        f"/kubepods.slice/kubepods-pod1.slice/cri-containerd-{DOCKER}.scope",
        f"/machine.slice/libpod-{DOCKER}.scope",
        f"/kubepods/besteffort/pod1/crio-{DOCKER}.scope",
        f"/docker/{DOCKER}",
        f"/docker/{DOCKER}/",
    ],
)
def test_container_id_from_runtime_naming(path: str) -> None:
    assert container_id(path) == DOCKER


@pytest.mark.parametrize("path", ["/", "/user.slice/user-0.slice/session-1.scope", "/docker/abc"])
def test_no_container_id(path: str) -> None:
    assert container_id(path) is None


def _fake_cgroupfs(tmp_path: Path) -> Path:
    (tmp_path / "proc/self").mkdir(parents=True)
    (tmp_path / "proc/self/mounts").write_text(
        "proc /proc proc rw 0 0\ncgroup2 /sys/fs/cgroup cgroup2 rw 0 0\n"
    )
    cgroupfs = tmp_path / "sys/fs/cgroup"
    (cgroupfs / f"system.slice/docker-{DOCKER}.scope").mkdir(parents=True)
    (cgroupfs / f"system.slice/docker-{'f' * 64}.scope").mkdir(parents=True)
    return cgroupfs


def test_container_cgroups_by_prefix(tmp_path: Path) -> None:
    cgroupfs = _fake_cgroupfs(tmp_path)
    assert container_cgroups("0123", tmp_path) == [cgroupfs / f"system.slice/docker-{DOCKER}.scope"]
    assert container_cgroups("abc", tmp_path) == []
    with pytest.raises(ValueError, match="hexadecimal"):
        container_cgroups("../x", tmp_path)


def test_cgroup_id_is_the_directory_inode(tmp_path: Path) -> None:
    assert cgroup_id(tmp_path) == os.stat(tmp_path).st_ino
    with pytest.raises(FeatureMissing):
        cgroup_id(tmp_path / "missing")


def test_no_cgroup2(tmp_path: Path) -> None:
    (tmp_path / "proc/self").mkdir(parents=True)
    (tmp_path / "proc/self/mounts").write_text("proc /proc proc rw 0 0\n")
    with pytest.raises(FeatureMissing, match="cgroup2"):
        cgroup2_mountpoint(tmp_path)


def test_this_machine_has_cgroup2() -> None:
    assert cgroup2_mountpoint().is_dir()


def test_container_ids_cover_a_container_and_its_subgroups(tmp_path: Path) -> None:
    cgroupfs = _fake_cgroupfs(tmp_path)
    docker = cgroupfs / f"system.slice/docker-{DOCKER}.scope"
    (docker / "init").mkdir()
    (cgroupfs / "user.slice").mkdir()
    found = container_ids(tmp_path)
    assert found == {
        os.stat(docker).st_ino: DOCKER,
        os.stat(docker / "init").st_ino: DOCKER,
        os.stat(cgroupfs / f"system.slice/docker-{'f' * 64}.scope").st_ino: "f" * 64,
    }
