"""Compiler speed: examples, growth with instances, the 253-instance build as a whole
process, and the cost of rejecting hostile YAML.

Prints numbers; asserts nothing. Run: .venv/bin/python bench/compile.py [--quick]
"""

from __future__ import annotations

import os
import resource
import statistics
import subprocess
import sys
import tempfile
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


def large_project(services: int, replicas: int, provisioned: bool = False) -> str:
    """`services` services of `replicas` each, a dependency chain; with `provisioned`, each
    service also installs packages and runs commands (what real projects have)."""
    lines = ["name: big", "services:"]
    for i in range(services):
        lines += [
            f"  s{i}:",
            "    image: debian",
            f"    replicas: {replicas}",
            f"    ports: ['{20000 + i * 100}:80']",
        ]
        if i:
            lines.append(f"    depends_on: [s{i - 1}]")
        if provisioned:
            lines += [
                "    cloud_init:",
                f"      packages: [nginx, postgresql-client, curl, jq, tool-{i}]",
                "      runcmd:",
                f"        - echo 'service s{i}' > /etc/motd",
                "        - [systemctl, enable, --now, nginx]",
                "        - |",
                "          set -e",
                f"          mkdir -p /srv/s{i} && chown www-data /srv/s{i}",
            ]
    return "\n".join(lines) + "\n"


def expect_error(text: str) -> None:
    try:
        load_text(text, environ={})
    except HolosError:
        return
    raise AssertionError("hostile input was accepted")


SCALES = ((1, 1), (23, 1), (23, 11))  # 1, 23 and 253 instances (the subnet's maximum)


def compile_text(text: str) -> int:
    doc = load_text(text, environ={})
    return len(compile_project(build_project(doc, HostFiles()).project).files)


def growth(runs: int = 3) -> None:
    """In-process compile time per instance: flat if the compiler is linear."""
    print(f"{'instances':>9} {'compile ms':>11} {'instances/s':>12}   (packages + runcmd each)")
    for services, replicas in SCALES:
        text = large_project(services, replicas, provisioned=True)
        seconds = timed(lambda t=text: compile_text(t), runs=runs)  # type: ignore[misc]
        count = services * replicas
        print(f"{count:9} {seconds * 1000:11.1f} {count / seconds:12.0f}")


def whole_build(
    holosc: list[str], runs: int = 5, before: list[str] | None = None
) -> dict[str, tuple[float, float]]:
    """`holosc build` of the 253-instance project as a whole process, into an empty
    directory and again over its own unchanged output: median wall and CPU seconds (on a
    busy machine the wall time is mostly waiting for a core). With `before` (an earlier
    holosc), its builds take turns with these, labelled "(before)"."""
    versions = {"": holosc} | ({" (before)": before} if before else {})
    labels = [
        (f"build 253 ({kind}){suffix}", argv, kind, suffix)
        for suffix, argv in versions.items()
        for kind in ("fresh", "unchanged")
    ]
    wall: dict[str, list[float]] = {label: [] for label, *_ in labels}
    cpu: dict[str, list[float]] = {label: [] for label, *_ in labels}
    env = {**os.environ, "HOLOSC_SSH_KEY": str(REPO / "tests" / "data" / "golden_key")}
    with tempfile.TemporaryDirectory() as tmp:
        project = Path(tmp, "holos.yaml")
        project.write_text(large_project(23, 11, provisioned=True))
        for run in range(runs):
            for label, holosc_cmd, kind, suffix in labels:
                out = (
                    Path(tmp, f"fresh{suffix}", str(run))
                    if kind == "fresh"
                    else Path(tmp, f"kept{suffix}")
                )
                argv = [*holosc_cmd, "build", "-f", str(project), "-o", str(out)]
                before_usage = resource.getrusage(resource.RUSAGE_CHILDREN)
                start = time.perf_counter()
                result = subprocess.run(argv, env=env, capture_output=True, check=False)
                wall[label].append(time.perf_counter() - start)
                after = resource.getrusage(resource.RUSAGE_CHILDREN)
                cpu[label].append(
                    after.ru_utime - before_usage.ru_utime + after.ru_stime - before_usage.ru_stime
                )
                if result.returncode != 0:
                    raise SystemExit(result.stderr.decode())
    return {k: (statistics.median(wall[k]), statistics.median(cpu[k])) for k in wall}


def growth_before(before: Path) -> None:
    """growth() of an earlier checkout, in its own interpreter."""
    print(f"before ({before.name}):")
    subprocess.run(
        [str(before / ".venv" / "bin" / "python"), __file__, "--growth"],
        env={**os.environ, "PYTHONPATH": str(before)},
        check=True,
    )


def report_build(results: dict[str, tuple[float, float]]) -> None:
    for label, (seconds, cpu) in results.items():
        print(f"{label:<33} {seconds:6.2f} s wall {cpu:6.2f} s cpu  (target < 0.5 s)")


def holosc_argv() -> list[str]:
    script = Path(sys.executable).parent / "holosc"
    return [str(script)] if script.exists() else [sys.executable, "-m", "holosc"]


def main() -> None:
    growth()
    if "--growth" in sys.argv:
        return
    report_build(whole_build(holosc_argv()))
    if "--quick" in sys.argv:
        return
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
