"""What one pass over a ring hands on: perf rings and the BPF ring buffer alike."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class Batch:
    """What one pass over a ring found: the payloads back to back in one buffer, so a batch
    crosses from the compiled drain to Python (and on to the decoder) in one piece."""

    data: bytes = b""  # the payloads, in ring order, without gaps
    sizes: list[int] = field(default_factory=list)  # the size of each payload in data
    lost: int = 0  # records the kernel dropped because the ring was full
    malformed: int = 0  # bytes skipped because a record header or the positions made no sense

    @classmethod
    def of(cls, payloads: list[bytes], lost: int = 0, malformed: int = 0) -> Batch:
        return cls(b"".join(payloads), [len(p) for p in payloads], lost, malformed)

    def payloads(self) -> list[bytes]:
        """Each payload as its own bytes."""
        view, offset, out = memoryview(self.data), 0, []
        for size in self.sizes:
            out.append(bytes(view[offset : offset + size]))
            offset += size
        return out
