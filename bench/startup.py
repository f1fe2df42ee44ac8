"""Startup of the `holosc` command (prints numbers, asserts nothing).

Each case runs as a whole process, interleaved with the others round by round (this
machine is shared: a burst of load hits every case alike), and is reported as its median
and as a ratio to the median of a bare `python -c pass` of the same interpreter.

Usage: python bench/startup.py [RUNS] [BEFORE]
BEFORE: a checkout of an earlier commit with its own .venv; its holosc runs as extra cases
in the same rounds ("(before)"), so before and after are measured side by side.
`holosc ps` talks to a stub systemctl that answers "running" and lists nothing (the
whole-process cost of ps with no project installed, without a systemd); bench/run_all.py
measures it against a real (private) systemd too.
"""

from __future__ import annotations

import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
EXAMPLE = REPO / "examples" / "three-tier" / "holos.yaml"
LIMITS = {"holosc --help": 6, "holosc ps": 6, "holosc validate": 10}  # issue #17's targets

Case = tuple[str, Sequence[str], Mapping[str, str]]


def holosc_argv() -> list[str]:
    script = Path(sys.executable).parent / "holosc"
    return [str(script)] if script.exists() else [sys.executable, "-m", "holosc"]


def interleaved(cases: Sequence[Case], runs: int) -> dict[str, tuple[float, float]]:
    """Median wall time and median CPU time (user + system) of each case, the cases taking
    turns in every round. On a busy machine wall time is mostly waiting for a core: the
    CPU time says what the command itself costs."""
    wall: dict[str, list[float]] = {label: [] for label, _, _ in cases}
    cpu: dict[str, list[float]] = {label: [] for label, _, _ in cases}
    for _ in range(runs):
        for label, argv, env in cases:
            before = resource.getrusage(resource.RUSAGE_CHILDREN)
            start = time.perf_counter()
            subprocess.run(argv, env={**os.environ, **env}, capture_output=True, check=False)
            wall[label].append(time.perf_counter() - start)
            after = resource.getrusage(resource.RUSAGE_CHILDREN)
            cpu[label].append(after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime)
    return {k: (statistics.median(wall[k]), statistics.median(cpu[k])) for k in wall}


def report(medians: Mapping[str, tuple[float, float]], floor: str = "python -c pass") -> None:
    base, base_cpu = medians[floor]
    print(f"{'case':34} {'wall ms':>8} {'x python':>9} {'cpu ms':>8} {'x python':>9}  target")
    for label, (seconds, cpu) in medians.items():
        limit = next((f"< {v}x" for k, v in LIMITS.items() if label.startswith(k)), "")
        print(
            f"{label:34} {seconds * 1000:8.1f} {seconds / base:9.1f} {cpu * 1000:8.1f} "
            f"{cpu / base_cpu:9.1f}  {limit}"
        )


def stub_systemctl(directory: Path) -> dict[str, str]:
    """An environment in which holosc sees a running manager with nothing installed."""
    stub = directory / "systemctl"
    stub.write_text('#!/bin/sh\n[ "$1" = is-system-running ] && echo running\nexit 0\n')
    stub.chmod(0o755)
    (directory / "config").mkdir()
    return {"HOLOSC_SYSTEMCTL": str(stub), "HOLOSC_CONFIG_DIR": str(directory / "config")}


def cases(
    ps_env: Mapping[str, str],
    ps_label: str = "holosc ps (stub systemctl)",
    before: Path | None = None,
) -> list[Case]:
    versions = [("", holosc_argv())]
    if before is not None:
        versions.append((" (before)", [str(before / ".venv" / "bin" / "holosc")]))
    result: list[Case] = [("python -c pass", [sys.executable, "-c", "pass"], {})]
    for suffix, holosc in versions:
        result += [
            ("holosc --help" + suffix, [*holosc, "--help"], {}),
            (ps_label + suffix, [*holosc, "ps"], ps_env),
            ("holosc validate three-tier" + suffix, [*holosc, "validate", "-f", str(EXAMPLE)], {}),
        ]
    return result


def main() -> None:
    runs = int(sys.argv[1]) if len(sys.argv) > 1 else 21
    before = Path(sys.argv[2]) if len(sys.argv) > 2 else None
    with tempfile.TemporaryDirectory() as tmp:
        medians = interleaved(cases(stub_systemctl(Path(tmp)), before=before), runs)
    print(f"holosc startup, whole process, median of {runs} interleaved runs")
    report(medians)


if __name__ == "__main__":
    main()
