"""The test harness itself: a test process that dies leaves no private systemd behind, and
the private systemd keeps to its own cgroup and has a journal."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from tests.conftest import REPO
from tests.systemd_harness import PrivateSystemd

STARTER = """
import sys, time
from pathlib import Path
from tests.systemd_harness import PrivateSystemd
sd = PrivateSystemd(Path(sys.argv[1])).start()
print(sd.pid, flush=True)
time.sleep(600)
"""


def test_a_killed_test_takes_its_private_systemd_with_it(tmp_path: Path) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-c", STARTER, str(tmp_path / "sd")],
        cwd=REPO, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert proc.stdout is not None
    pid = int(proc.stdout.readline())
    assert Path(f"/proc/{pid}").exists()
    os.kill(proc.pid, signal.SIGKILL)  # what a timeout does to pytest
    proc.wait()
    deadline = time.monotonic() + 30
    while Path(f"/proc/{pid}").exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not Path(f"/proc/{pid}").exists(), "the private systemd outlived its test"


def test_the_private_systemd_lives_below_its_own_cgroup_and_keeps_a_journal(
    tmp_path: Path,
) -> None:
    """Its init.scope and units sit in the test's cgroup, not beside the outer manager's
    (in the Debian 13 lane's booted container that was the container's own system.slice,
    and systemd 257's journald refused to start there), and its journald runs."""
    sd = PrivateSystemd(tmp_path / "sd").start()
    try:
        assert sd.cgroups, "no cgroup hierarchy to run in"
        where = Path(f"/proc/{sd.pid}/cgroup").read_text()
        for cgroup in sd.cgroups:
            procs = cgroup / "init.scope" / "cgroup.procs"
            inside = procs.exists() and str(sd.pid) in procs.read_text().split()
            assert inside, f"PID 1 is not in {procs.parent} but in:\n{where}"
        marker = f"holosc-harness-{os.getpid()}"
        sd.run(["systemd-run", "--unit=holos-test-echo", "--", "echo", marker])
        deadline = time.monotonic() + 30
        while True:
            journal = sd.run(
                ["journalctl", "--no-pager", "-o", "cat", "-u", "holos-test-echo"], check=False
            )
            if marker in journal.stdout.splitlines():
                break
            state = sd.systemctl("show", "-p", "ActiveState", "--value", "systemd-journald")
            assert time.monotonic() < deadline, f"no journal (journald {state.stdout.strip()})"
            time.sleep(0.2)
    finally:
        sd.stop()
