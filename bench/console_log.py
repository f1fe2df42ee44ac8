"""Console logs (issue 22, class 8): memory of `holosc logs --console -n 5` against the
log's size, and the time `holos-console-log trim` takes to cut a log. Prints numbers,
asserts nothing; needs no systemd and no VM (the project is installed into directories
of a temporary root, as tests/test_consolelog.py does):

    .venv/bin/python bench/console_log.py

Before issue 22 the command read the whole log: 358-397 MB of memory for a 120 MiB log.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "runtime-helpers"))
sys.path.insert(0, str(REPO))

LINE = b"[    1.234567] a kernel message of a typical length, written to the serial port\r\n"


def install(root: Path) -> dict[str, str]:
    project = root / "p"
    shutil.copytree(REPO / "examples" / "tiny-guest", project)
    env = dict(
        os.environ,
        HOLOSC_UNIT_DIR=str(root / "units"),
        HOLOSC_CONFIG_DIR=str(root / "etc"),
        HOLOSC_STATE_DIR=str(root / "state"),
        HOLOSC_RUNTIME_DIR=str(root / "run"),
        HOLOSC_SYSTEMCTL="true",
        PYTHONPATH=str(REPO),
    )
    subprocess.run(
        [sys.executable, "-m", "holosc", "install"], cwd=project, env=env, check=True,
        capture_output=True,
    )  # fmt: skip
    return env


def write_log(log: Path, mib: int) -> None:
    block = LINE * (2**20 // len(LINE))
    with log.open("wb") as f:
        for _ in range(mib):
            f.write(block)


def max_rss_mib(argv: list[str], cwd: Path, env: dict[str, str]) -> float:
    """Peak resident memory of one run of argv (its own process, waited for here)."""
    pid = os.fork()
    if pid == 0:
        os.chdir(cwd)
        fd = os.open(os.devnull, os.O_WRONLY)
        os.dup2(fd, 1)
        os.execvpe(argv[0], argv, env)
    _, status, usage = os.wait4(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0, argv
    return usage.ru_maxrss / 1024


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        env = install(root)
        log = root / "state" / "instances" / "tiny" / "db-0" / "console.log"
        log.parent.mkdir(parents=True)
        argv = [sys.executable, "-m", "holosc", "logs", "--console", "-n", "5", "db-0"]
        print("log size      logs --console -n 5: max RSS")
        for mib in (1, 120, 1024):
            write_log(log, mib)
            print(f"{mib:>5} MiB     {max_rss_mib(argv, root / 'p', env):6.1f} MiB")

        from holos_runtime import consolelog

        print("\ntrim of a 120 MiB log to its last ~1 MiB (page cache warm)")
        for _ in range(3):
            write_log(log, 120)
            began = time.perf_counter()
            removed = consolelog.trim(log)
            took = time.perf_counter() - began
            left = log.stat().st_size
            print(f"  cut {removed / 2**20:.1f} MiB in {took * 1000:.1f} ms ({left} B left)")


if __name__ == "__main__":
    main()
