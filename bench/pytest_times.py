"""Where the suite's time goes: wall and CPU seconds of each test, summed per file.

    .venv/bin/python -m pytest -p bench.pytest_times [PYTEST ARGS]   # writes .pytest-times.jsonl
    .venv/bin/python bench/pytest_times.py [.pytest-times.jsonl ...] [--top N]

A test's time runs from its setup to its teardown, so a fixture's cost lands on the test
that first sets it up (session fixtures: the guest image, the kernel) and its teardown on
the last. CPU is this process plus its reaped children (QEMU under a private systemd is
counted when that systemd's namespace is reaped, in the fixture's teardown; a booted
Debian root's guests likewise). Wall minus CPU is time spent waiting: sleeps, polls,
timeouts, or the other core. The machine is shared: compare CPU, rank by it, and read
the load printed beside the totals. HOLOSC_TIMES_FILE names another output file.
"""

from __future__ import annotations

import json
import os
import resource
import sys
import time
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

DEFAULT = ".pytest-times.jsonl"


def _cpu() -> float:
    me = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem: pytest.Item | None) -> Iterator[None]:
    wall, cpu, load = time.monotonic(), _cpu(), os.getloadavg()[0]
    yield
    row = {
        "test": item.nodeid,
        "wall": round(time.monotonic() - wall, 3),
        "cpu": round(_cpu() - cpu, 3),
        "load": round(load, 2),
        "worker": os.environ.get("PYTEST_XDIST_WORKER", ""),
    }
    path = Path(os.environ.get("HOLOSC_TIMES_FILE", DEFAULT))
    with path.open("a") as out:
        out.write(json.dumps(row) + "\n")


def _file(nodeid: str) -> str:
    return nodeid.split("::", 1)[0]


def report(rows: list[dict[str, Any]], top: int) -> None:
    per_file: dict[str, list[float]] = defaultdict(lambda: [0.0, 0.0, 0.0])
    for row in rows:
        acc = per_file[_file(row["test"])]
        acc[0] += row["wall"]
        acc[1] += row["cpu"]
        acc[2] += 1
    wall = sum(r["wall"] for r in rows)
    cpu = sum(r["cpu"] for r in rows)
    loads = sorted(r["load"] for r in rows) or [0.0]
    print(f"{len(rows)} tests: {wall:.0f} s wall, {cpu:.0f} s CPU "
          f"(load median {loads[len(loads) // 2]:.1f}, max {loads[-1]:.1f})")  # fmt: skip
    print(f"\n{'wall s':>8} {'CPU s':>8} {'wait s':>8} {'tests':>6}  file")
    for name, (w, c, n) in sorted(per_file.items(), key=lambda kv: -kv[1][0]):
        print(f"{w:8.1f} {c:8.1f} {w - c:8.1f} {int(n):6}  {name}")
    print(f"\n{'wall s':>8} {'CPU s':>8} {'wait s':>8} {'load':>5}  test (top {top} by wall)")
    for row in sorted(rows, key=lambda r: -r["wall"])[:top]:
        w, c = row["wall"], row["cpu"]
        print(f"{w:8.1f} {c:8.1f} {w - c:8.1f} {row['load']:5.1f}  {row['test']}")


def main(argv: list[str]) -> int:
    top = 30
    if "--top" in argv:
        at = argv.index("--top")
        top = int(argv[at + 1])
        del argv[at : at + 2]
    rows = []
    for name in argv or [DEFAULT]:
        rows += [json.loads(line) for line in Path(name).read_text().splitlines() if line]
    report(rows, top)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
