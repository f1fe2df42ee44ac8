"""The test harness itself: a test process that dies leaves no private systemd behind."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from tests.conftest import REPO

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
