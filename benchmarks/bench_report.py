"""The benchmarks' tables: printed at the end of the run (conftest.py) and saved as JSON under
benchmarks/results/. Imported as `bench_report`: pytest puts this folder on sys.path."""

from __future__ import annotations

import json
import os
import platform
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).parent / "results"


@dataclass
class Table:
    title: str
    columns: Sequence[str]
    rows: list[Sequence[Any]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def render(self) -> str:
        cells = [[str(c) for c in self.columns]] + [[_cell(v) for v in row] for row in self.rows]
        widths = [max(len(row[i]) for row in cells) for i in range(len(self.columns))]
        lines = [self.title, "-" * len(self.title)]
        for n, row in enumerate(cells):
            lines.append("  ".join(c.rjust(w) if i else c.ljust(w) for i, (c, w) in
                                   enumerate(zip(row, widths))))  # fmt: skip
            if n == 0:
                lines.append("  ".join("-" * w for w in widths))
        return "\n".join(lines + [f"  {note}" for note in self.notes])

    def save(self, name: str) -> Path:
        RESULTS.mkdir(exist_ok=True)
        path = RESULTS / f"{name}-{time.strftime('%Y%m%dT%H%M%S')}.json"
        document = {
            "title": self.title,
            "machine": machine(),
            "date": time.strftime("%Y-%m-%d %H:%M:%S %z"),
            "columns": list(self.columns),
            "rows": [list(row) for row in self.rows],
            "notes": self.notes,
        }
        path.write_text(json.dumps(document, indent=2) + "\n")
        return path


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:,.2f}" if value < 100 else f"{value:,.0f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def machine() -> str:
    model = "unknown CPU"
    with open("/proc/cpuinfo") as cpuinfo:
        for line in cpuinfo:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    python = platform.python_version()
    return f"{os.cpu_count()} x {model}, Linux {platform.release()}, Python {python}"


TABLES: list[Table] = []


def publish(table: Table, name: str) -> None:
    """Print the table at the end of the run, and save it as JSON now."""
    table.notes.append(f"saved to {table.save(name)}")
    TABLES.append(table)
