"""`holosc ps` and an unchanged `holosc up` against a private systemd (prints numbers,
asserts nothing; needs root, like tests/test_lifecycle.py).

- ps of a 253-instance project whose units are installed but not started (starting 253
  QEMUs is beyond this machine), and ps with nothing installed;
- `up` of a running project (the busybox guests of tests/test_lifecycle.py, 3 instances)
  run again unchanged: nothing to restart.
Every holosc run, and the `python -c pass` they are compared with, goes through the same
nsenter into the private systemd's namespaces. A systemctl wrapper counts the queries.

Usage: python bench/lifecycle.py [RUNS] [BEFORE]
BEFORE: a checkout of an earlier commit with its own .venv: its holosc takes turns with
this one on the same projects ("(before)" rows; a failed run is counted and shown).
"""

from __future__ import annotations

import contextlib
import gzip
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import tests.conftest  # noqa: E402,F401  (imports tests.guestkernel without a cycle)
from bench.compile import large_project  # noqa: E402
from tests import guestkernel  # noqa: E402
from tests.systemd_harness import PrivateSystemd  # noqa: E402

TINY = """\
name: life
x-tiny: &tiny
  image: ./disk.qcow2
  vm:
    memory_mb: 128
    kernel: ./vmlinuz
    initrd: ./acpi.cpio.gz
    cmdline: console=ttyS0 quiet panic=-1
services:
  db:
    <<: *tiny
  web:
    <<: *tiny
    replicas: 2
    depends_on: [db]
"""


def tiny_project(root: Path, name: str = "life") -> Path:
    """The busybox guests of tests/test_lifecycle.py (kernel cached by the tests)."""
    kernel = guestkernel.cache_dir() / "kernel"
    if not (kernel / "evdev.ko").exists():
        guestkernel._fetch_kernel(kernel)
    busybox = shutil.which("busybox") or sys.exit("apt-get install busybox-static")
    entries = [
        *((name, 0o40755, b"") for name in ("bin", "dev", "proc", "sys")),
        ("bin/busybox", 0o100755, Path(busybox).read_bytes()),
        ("button.ko", 0o100644, (kernel / "button.ko").read_bytes()),
        ("evdev.ko", 0o100644, (kernel / "evdev.ko").read_bytes()),
        ("init", 0o100755, guestkernel.INIT_ACPI.replace("READY_MARK", "ready").encode()),
    ]
    root.mkdir()
    (root / "holos.yaml").write_text(TINY.replace("name: life", f"name: {name}"))
    shutil.copy(kernel / "vmlinuz", root / "vmlinuz")
    (root / "acpi.cpio.gz").write_bytes(gzip.compress(guestkernel.newc(entries), mtime=0))
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", str(root / "disk.qcow2"), "32M"])
    return root


class Bench:
    def __init__(self, sd: PrivateSystemd, tmp: Path) -> None:
        self.sd = sd
        self.log = tmp / "systemctl.log"
        wrapper = tmp / "systemctl"
        wrapper.write_text(f'#!/bin/sh\necho "$1" >> {self.log}\nexec systemctl "$@"\n')
        wrapper.chmod(0o755)
        self.env = {"HOLOSC_SYSTEMCTL": str(wrapper), "HOLOSC_SSH_KEY": str(tmp / "key")}
        self.failures: list[str] = []
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(tmp / "key")])

    def holosc(
        self, project: Path, *args: str, before: Path | None = None
    ) -> tuple[tuple[float, float], list[str]]:
        """(wall, CPU) seconds of one holosc run, and the systemctl verbs it used; with
        `before`, the holosc of that checkout (its failure is reported, not fatal)."""
        self.log.write_text("")
        with timer() as took:
            if before is None:
                result = self.sd.holosc(*args, cwd=project, **self.env)
            else:
                python = str(before / ".venv" / "bin" / "python")
                env = dict(os.environ, HOLOS_ACCEL="tcg", PYTHONPATH=str(before), **self.env)
                result = self.sd.run(
                    [python, "-m", "holosc", *args], check=False, env=env, cwd=project, timeout=900
                )
        if result.returncode != 0:
            if before is None:
                raise SystemExit(f"holosc {' '.join(args)} failed:\n{result.stderr}")
            self.failures.append(
                f"(before) holosc {' '.join(args)}: {result.stderr.strip()[-300:]}"
            )
        return took[0], self.log.read_text().split()

    def python(self) -> tuple[float, float]:
        with timer() as took:
            self.sd.run([sys.executable, "-c", "pass"])
        return took[0]


@contextlib.contextmanager
def timer() -> Iterator[list[tuple[float, float]]]:
    """Wall and CPU (user + system of waited-for children: nsenter and what it runs)."""
    took: list[tuple[float, float]] = []
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    yield took
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime
    took.append((time.perf_counter() - start, cpu))


def main() -> None:
    runs = int(sys.argv[1]) if len(sys.argv) > 1 else 7
    before = Path(sys.argv[2]) if len(sys.argv) > 2 else None
    if os.geteuid() != 0:
        sys.exit("needs root (a private systemd in its own namespaces)")
    with tempfile.TemporaryDirectory() as name:
        tmp = Path(name)
        sd = PrivateSystemd(tmp / "systemd").start()
        try:
            measure(Bench(sd, tmp), tmp, runs, before)
        finally:
            sd.stop()


def measure(bench: Bench, tmp: Path, runs: int, before: Path | None = None) -> None:
    big = tmp / "big"
    big.mkdir()
    (big / "holos.yaml").write_text(large_project(23, 11, provisioned=True))
    life = tiny_project(tmp / "life")
    empty = tmp / "empty"
    empty.mkdir()
    samples: dict[str, list[tuple[float, float]]] = {
        "python -c pass": [],
        "ps (nothing installed)": [],
    }
    for _ in range(runs):
        samples["python -c pass"].append(bench.python())
        samples["ps (nothing installed)"].append(bench.holosc(empty, "ps")[0])
    bench.holosc(big, "install")
    bench.holosc(life, "up")
    cases: list[tuple[str, Path, tuple[str, ...], Path | None]] = [
        ("ps big (253 inst, installed)", big, ("ps", "-p", "big"), None),
        ("up life (running, unchanged)", life, ("up",), None),
    ]
    # The earlier holosc gets a project of its own: its output may differ, and an `up` of
    # the other version's install would be a change.
    old = tiny_project(tmp / "old", "old") if before is not None else None
    if before is not None and old is not None:
        bench.holosc(old, "up", before=before)
        cases += [
            ("ps big (253 inst, installed) (before)", big, ("ps", "-p", "big"), before),
            ("up old (running, unchanged) (before)", old, ("up",), before),
        ]
    samples |= {label: [] for label, *_ in cases}
    calls: dict[str, list[str]] = {}
    for _ in range(runs):
        for label, project, args, version in cases:
            seconds, calls[label] = bench.holosc(project, *args, before=version)
            samples[label].append(seconds)
    bench.holosc(life, "down")
    if old is not None:
        bench.holosc(old, "down", before=before)
    base = statistics.median(t[0] for t in samples["python -c pass"])
    base_cpu = statistics.median(t[1] for t in samples["python -c pass"])
    print(f"lifecycle against a private systemd, median of {runs} runs (through nsenter)")
    print(f"{'case':39} {'wall ms':>8} {'x py':>5} {'cpu ms':>7} {'x py':>5}  systemctl calls")
    for label, times in samples.items():
        wall = statistics.median(t[0] for t in times)
        cpu = statistics.median(t[1] for t in times)
        used = " ".join(calls.get(label, [])) or "-"
        print(
            f"{label:39} {wall * 1000:8.1f} {wall / base:5.1f} {cpu * 1000:7.1f} "
            f"{cpu / base_cpu:5.1f}  {used}"
        )
    print("(the calls include holosc asking the manager where its directories are)")
    for failure in dict.fromkeys(bench.failures):
        print(f"failed: {failure}")


if __name__ == "__main__":
    main()
