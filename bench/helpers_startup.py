"""Startup time of the runtime helpers (prints numbers, asserts nothing).

Measures, best and median of N runs, wall time of:
  * bare ``python -c pass`` (the floor);
  * ``python -m holos_runtime.<helper> --help``;
  * a no-op run: ``holos-qmp-stop`` with a missing socket (exit 3) and ``holos-health``
    under HOLOS_HEALTH_BYPASS=1 (exit 0);
  * the same through the installed console scripts when they sit next to the interpreter.

Usage: python bench/helpers_startup.py [RUNS]
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

HEALTH_NOOP = ["--port", "22", "--key", "k", "--user", "u", "--", "true"]
QMP_NOOP = ["--qmp", "/nonexistent/qmp.sock"]


def measure(argv: list[str], runs: int) -> tuple[float, float, int]:
    env = os.environ | {"HOLOS_HEALTH_BYPASS": "1"}
    times = []
    rc = 0
    for _ in range(runs):
        start = time.perf_counter()
        rc = subprocess.run(argv, capture_output=True, env=env, check=False).returncode
        times.append(time.perf_counter() - start)
    return min(times), statistics.median(times), rc


def main() -> None:
    runs = int(sys.argv[1]) if len(sys.argv) > 1 else 20
    py = sys.executable
    bindir = Path(py).parent
    cases: list[tuple[str, list[str]]] = [("python -c pass", [py, "-c", "pass"])]
    for module, script, noop in (
        ("qmp_stop", "holos-qmp-stop", QMP_NOOP),
        ("health", "holos-health", HEALTH_NOOP),
    ):
        cases.append((f"-m {module} --help", [py, "-m", f"holos_runtime.{module}", "--help"]))
        cases.append((f"-m {module} no-op", [py, "-m", f"holos_runtime.{module}", *noop]))
        if (bindir / script).exists():
            cases.append((f"{script} --help", [str(bindir / script), "--help"]))
            cases.append((f"{script} no-op", [str(bindir / script), *noop]))
    print(f"{'case':32} {'best ms':>8} {'median ms':>10} {'rc':>4}   ({runs} runs)")
    for label, argv in cases:
        best, median, rc = measure(argv, runs)
        print(f"{label:32} {best * 1000:8.1f} {median * 1000:10.1f} {rc:4}")


if __name__ == "__main__":
    main()
