"""The count of records the programs could not put in a ring, per CPU: the programs add to it
whenever bpf_perf_event_output or bpf_ringbuf_output fails (bpf_bytecode/programs/output.py),
so every loss is known exactly and at once."""

from __future__ import annotations

from contextlib import ExitStack

from kernel_compat import possible_cpus
from rawtrace.kernel.bpf import MapType
from rawtrace.kernel.maps import Map

_KEY0 = bytes(4)


class FailedOutputs:
    def __init__(self, counter: Map) -> None:
        self.counter = counter
        self._possible = possible_cpus()

    @classmethod
    def create(cls, resources: ExitStack) -> FailedOutputs:
        """A zeroed counter, owned by `resources`."""
        counter = Map.create(
            MapType.PERCPU_ARRAY, key_size=4, value_size=8, max_entries=1, name="rawtrace_lost"
        )
        return cls(resources.enter_context(counter))

    def fileno(self) -> int:
        return self.counter.fileno()

    def per_cpu(self) -> dict[int, int]:
        # the kernel copies one value per possible CPU, in CPU order
        values = self.counter.lookup_per_cpu(_KEY0, len(self._possible))
        return {cpu: int.from_bytes(value, "little") for cpu, value in zip(self._possible, values)}
