"""Compiler speed: examples, a large project, and the cost of rejecting hostile YAML.

Prints numbers; asserts nothing. Run: .venv/bin/python bench/compile.py
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from pathlib import Path

from holosc.core.compiler import compile_project
from holosc.core.validate.checks import build_project
from holosc.errors import HolosError
from holosc.load.files import HostFiles
from holosc.load.parse import load_file, load_text

REPO = Path(__file__).resolve().parents[1]


def timed(fn: Callable[[], object], runs: int = 5) -> float:
    samples = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - start)
    return statistics.median(samples)


def compile_file(path: Path) -> int:
    doc = load_file(path, environ={})
    return len(compile_project(build_project(doc, HostFiles()).project).files)


def large_project(services: int, replicas: int) -> str:
    lines = ["name: big", "services:"]
    for i in range(services):
        lines += [
            f"  s{i}:",
            "    image: debian",
            f"    replicas: {replicas}",
            f"    ports: ['{20000 + i * 10}:80']",
        ]
        if i:
            lines.append(f"    depends_on: [s{i - 1}]")
    return "\n".join(lines) + "\n"


def expect_error(text: str) -> None:
    try:
        load_text(text, environ={})
    except HolosError:
        return
    raise AssertionError("hostile input was accepted")


def main() -> None:
    for example in sorted((REPO / "examples").glob("*/holos.yaml")):
        files = compile_file(example)
        seconds = timed(lambda e=example: compile_file(e))  # type: ignore[misc]
        print(f"compile {example.parent.name:<12} {seconds * 1000:8.1f} ms  ({files} files)")
    text = large_project(50, 5)
    seconds = timed(
        lambda: compile_project(build_project(load_text(text, environ={}), HostFiles()).project),
        runs=3,
    )
    print(f"compile 50 services x 5 replicas (250 VMs) {seconds:6.2f} s")
    bomb = (
        "a: &a ["
        + ",".join(["x"] * 10)
        + "]\n"
        + "".join(
            f"{c}: &{c} [" + ",".join([f"*{p}"] * 10) + "]\n"
            for p, c in zip("abcdefgh", "bcdefghi", strict=True)
        )
    )
    print(
        f"reject alias bomb (10^9 values)        {timed(lambda: expect_error(bomb)) * 1000:6.1f} ms"
    )
    huge = "x: " + "a" * (5 * 1024 * 1024) + "\n"
    print(
        f"reject 5 MiB file                      {timed(lambda: expect_error(huge)) * 1000:6.1f} ms"
    )


if __name__ == "__main__":
    main()
