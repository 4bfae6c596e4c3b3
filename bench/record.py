"""Record one benchmark figure: bench/results/<name>.json and a line in bench/RESULTS.md.

    python bench/record.py <benchmark> <key> <number> "<readable line>"

Other figures already in the JSON file are kept, so one benchmark may be run in parts.
"""

from __future__ import annotations

import json
import platform
import sys
from datetime import datetime, timezone
from pathlib import Path

BENCH = Path(__file__).resolve().parent


def machine() -> str:
    cores = len(__import__("os").sched_getaffinity(0))
    mem_gib = round(int(Path("/proc/meminfo").read_text().split()[1]) / 1024 / 1024)
    return f"{platform.machine()} {cores} cores {mem_gib} GiB, {platform.system()} {platform.release()}, Python {platform.python_version()}"


def record(benchmark: str, figures: dict[str, float], line: str) -> None:
    path = BENCH / "results" / f"{benchmark}.json"
    path.parent.mkdir(exist_ok=True)
    existing = json.loads(path.read_text())["figures"] if path.exists() else {}
    today = datetime.now(timezone.utc).date().isoformat()
    path.write_text(json.dumps({"benchmark": benchmark, "date": today, "machine": machine(),
                                "figures": {**existing, **figures}}, indent=2) + "\n")
    results = BENCH / "RESULTS.md"
    text = results.read_text() if results.exists() else "# Benchmark results\n\n"
    results.write_text(text.rstrip("\n") + f"\n- {today} `{benchmark}`: {line}\n")


if __name__ == "__main__":
    name, key, value, text = sys.argv[1:5]
    record(name, {key: float(value)}, text)
