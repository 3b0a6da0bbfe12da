"""The guest's bytecode: the cache's way into a guest, and what it compiled on the way out.

Compiling is 16x slower in the guest (pytest's collection alone went from 23 s to 55 s
without bytecode), so bytecode is kept across runs and kernels. The guest reads it from a
tmpfs: from the 9p share, each start of Python there took 3 s longer.
"""

from __future__ import annotations

import os
import tarfile
from pathlib import Path

# In the guest's bytecode share: the cache going in, what the guest compiled coming out.
BYTECODE_IN, BYTECODE_OUT = "cache.tar", "compiled.tar"


def pack_bytecode(pycache: Path, share: Path, userspace: Path | None = None) -> None:
    """Put the cache's bytecode into SHARE/BYTECODE_IN; with the guest's own USERSPACE, its
    sources count as existing too."""
    pycache.mkdir(parents=True, exist_ok=True)
    roots = (Path("/"),) if userspace is None else (Path("/"), userspace)

    def current_bytecode(member: tarfile.TarInfo) -> tarfile.TarInfo | None:
        """The cache's bytecode of sources that still exist (checkouts come and go; each file
        costs the guest's boot time), without the files keep_bytecode is writing."""
        if member.name.endswith(".part"):
            return None
        source = Path(member.name)
        if member.isfile():
            source = source.with_name(source.name.split(".", 1)[0] + ".py")
        return member if any((root / source).exists() for root in roots) else None

    with tarfile.open(share / BYTECODE_IN, "w") as tar:
        tar.add(pycache, arcname=".", filter=current_bytecode)


def keep_bytecode(pycache: Path, share: Path) -> None:
    """Add what a guest compiled (SHARE/BYTECODE_OUT) to the cache. Each file is replaced
    whole: another guest may be packing the cache meanwhile, and a torn .pyc fails the import
    that reads it."""
    archive = share / BYTECODE_OUT
    if not archive.exists():
        return
    root = pycache.resolve()
    with tarfile.open(archive) as tar:
        for member in tar:
            data = tar.extractfile(member) if member.isfile() else None
            target = (root / member.name).resolve()
            if data is None or root not in target.parents:
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            partial = target.with_name(f"{target.name}.{os.getpid()}.part")
            partial.write_bytes(data.read())
            os.replace(partial, target)
