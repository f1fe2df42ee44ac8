"""Speed of compose's semantics: interpolation, the .env parser, and a project assembled
from includes and extends. Hostile sizes are the bounds holosc enforces (4 MiB of
interpolated text, a 1 MiB .env).

Prints numbers; asserts nothing. Run: .venv/bin/python bench/compose_semantics.py
"""

from __future__ import annotations

import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from holosc.core.dotenv import parse_dotenv
from holosc.core.interpolate import Budget, substitute
from holosc.core.validate.checks import build_project
from holosc.load.assemble import load_project
from holosc.load.files import HostFiles


def timed(fn: Callable[[], object], runs: int = 3) -> float:
    samples = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - start)
    return statistics.median(samples)


def interpolation() -> None:
    env = {"A": "value", "EMPTY": ""}
    cases = {
        "100k ${A-x} on one line (600 KB)": "${A-x}" * 100_000,
        "100k $A and text (700 KB)": "text $A " * 100_000,
        "10k nested ${E:-${A}} lines": "${EMPTY:-${A}}\n" * 10_000,
        "1 MB without a $": "plain " * 170_000,
    }
    for name, text in cases.items():
        seconds = timed(lambda t=text: substitute(t, env, budget=Budget(10**9)))  # type: ignore[misc]
        print(f"interpolate {name:<36} {seconds * 1000:8.1f} ms")


def dotenv() -> None:
    lines = "".join(f"KEY_{i}=value-{i} # comment\n" for i in range(20_000))
    quoted = "".join(f'Q_{i}="a\\tb ${{KEY_{i % 10}}}"\n' for i in range(20_000))
    for name, text in {"20k plain lines": lines, "20k double-quoted, interpolated": quoted}.items():
        seconds = timed(lambda t=text: parse_dotenv(t, {}))  # type: ignore[misc]
        print(f"parse .env {name:<37} {seconds * 1000:8.1f} ms  ({len(text) // 1024} KiB)")


def assembled(services: int = 60) -> None:
    """A main file including a file that extends, service by service, a base in a third."""
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        (root / "lib").mkdir()
        (root / "holos.yaml").write_text("name: big\ninclude: [lib/services.yaml]\n")
        (root / "lib" / "base.yaml").write_text(
            "services:\n  base: {image: debian:12, environment: [A=1], env_file: [b.env], "
            "volumes: ['./data:/data'], cloud_init: {packages: [curl]}}\n"
        )
        (root / "lib" / "b.env").write_text("B=${A:-2}\n")
        body = "".join(
            f"  s{i}: {{extends: {{service: base, file: base.yaml}}, "
            f"environment: {{N: '{i}'}}, cloud_init: {{packages: [p{i}]}}}}\n"
            for i in range(services)
        )
        (root / "lib" / "services.yaml").write_text("services:\n" + body)
        seconds = timed(
            lambda: build_project(load_project(root / "holos.yaml", environ={}), HostFiles())
        )
        label = f"load+validate {services} services (include + extends file)"
        print(f"{label:<48} {seconds * 1000:8.1f} ms")


def main() -> None:
    interpolation()
    dotenv()
    assembled()


if __name__ == "__main__":
    main()
