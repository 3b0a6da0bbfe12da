"""BPF maps, each owned by one Map object that closes its fd."""

from __future__ import annotations

import errno
from collections.abc import Iterator

from rawtrace.errors import RawtraceError
from rawtrace.kernel import bpf
from rawtrace.kernel.bpf import MapType
from rawtrace.kernel.fd import OwnedFd
from rawtrace.kernel.privileges import Refused, refusal


class Map(OwnedFd):
    """A created map; keys and values are bytes of the sizes it was created with."""

    def __init__(
        self, fd: int, map_type: MapType, key_size: int, value_size: int, name: str
    ) -> None:
        super().__init__(fd)
        self.map_type = map_type
        self.key_size = key_size
        self.value_size = value_size
        self.name = name

    @classmethod
    def create(
        cls,
        map_type: MapType,
        *,
        key_size: int,
        value_size: int,
        max_entries: int,
        name: str,
        flags: int = 0,
    ) -> Map:
        try:
            fd = bpf.map_create(map_type, key_size, value_size, max_entries, name, flags)
        except OSError as exc:
            if exc.errno in (errno.EPERM, errno.EACCES):
                raise refusal(
                    f"to create BPF map {name!r} ({map_type.name})", exc, Refused.BPF
                ) from exc
            raise RawtraceError(
                f"cannot create BPF map {name!r} ({map_type.name}, {max_entries} entries): "
                f"{exc.strerror}",
                _map_create_fix(exc.errno),
            ) from exc
        return cls(fd, map_type, key_size, value_size, name)

    def update(self, key: bytes, value: bytes, flags: int = 0) -> None:
        bpf.map_update_elem(self.fileno(), key, value, flags)

    def lookup(self, key: bytes) -> bytes | None:
        try:
            return bpf.map_lookup_elem(self.fileno(), key, self.value_size)
        except OSError as exc:
            if exc.errno == errno.ENOENT:
                return None
            raise

    def lookup_per_cpu(self, key: bytes, possible_cpus: int) -> list[bytes]:
        """A per-CPU map's values under key, one per possible CPU in CPU order.

        The kernel copies every possible CPU's value, each padded to 8 bytes.
        """
        stride = (self.value_size + 7) // 8 * 8
        values = bpf.map_lookup_elem(self.fileno(), key, stride * possible_cpus)
        return [values[i : i + self.value_size] for i in range(0, len(values), stride)]

    def delete(self, key: bytes) -> None:
        bpf.map_delete_elem(self.fileno(), key)

    def items(self) -> Iterator[tuple[bytes, bytes]]:
        """The entries, walked key by key: one that goes while walking is skipped; a hash map
        whose walked key goes restarts from its first (the kernel's rule), so a busy map may
        yield an entry twice."""
        key = bpf.map_get_next_key(self.fileno(), None, self.key_size)
        while key is not None:
            value = self.lookup(key)
            if value is not None:
                yield key, value
            key = bpf.map_get_next_key(self.fileno(), key, self.key_size)


def _map_create_fix(err: int | None) -> str | None:
    if err == errno.EINVAL:
        return "this kernel does not support this map type"
    return None
