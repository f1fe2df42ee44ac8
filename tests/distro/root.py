"""Debian roots for systemd-nspawn, built by build-root.sh and cached by their recipe.

`ensure_root("trixie")` returns $HOLOSC_TEST_CACHE/root-trixie-<hash>, where the hash
covers build-root.sh, scripts/setup.sh and pyproject.toml (what decides the root's
contents; holosc's own code is bind-mounted over the installed copy at run time). A build
goes to a temporary directory renamed into place when complete; older roots of the same
suite are removed then. One builder at a time (a lock file beside the root).
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from tests.conftest import REPO, require_tool
from tests.guestkernel import cache_dir

SCRIPT = Path(__file__).resolve().with_name("build-root.sh")
RECIPE = (SCRIPT, REPO / "scripts" / "setup.sh", REPO / "pyproject.toml")
SYSTEMD_VERSION = {"bookworm": 252, "trixie": 257}
# Where build-root.sh installs the checkout (scripts/setup.sh run there, editable).
INSIDE = "/opt/holosc"
# The checkout's directories bound over the installed copy, so the code under test runs.
SOURCE_DIRS = ("holosc", "templates", "runtime-helpers", "tests", "examples", "golden")


def root_dir(suite: str) -> Path:
    digest = hashlib.sha256(suite.encode())
    for path in RECIPE:
        digest.update(path.read_bytes())
    return cache_dir() / f"root-{suite}-{digest.hexdigest()[:16]}"


def source_binds() -> list[tuple[Path, str, bool]]:
    return [(REPO / d, f"{INSIDE}/{d}", True) for d in SOURCE_DIRS]


def _build(suite: str, dest: Path) -> None:
    if os.geteuid() != 0:
        pytest.fail(f"building a Debian root needs root ({SCRIPT})")
    require_tool("mmdebstrap")
    tmp = dest.with_name(f"{dest.name}.tmp-{os.getpid()}")
    log = dest.with_name(f"{dest.name}.log")
    started = time.monotonic()
    with log.open("w") as handle:
        rc = subprocess.run(
            [str(SCRIPT), suite, str(tmp)], stdout=handle, stderr=subprocess.STDOUT, timeout=1800
        ).returncode
    if rc != 0 or not (tmp / INSIDE.lstrip("/") / ".venv" / "bin" / "holosc").exists():
        shutil.rmtree(tmp, ignore_errors=True)
        tail = "".join(log.read_text(errors="replace").splitlines(keepends=True)[-30:])
        pytest.fail(f"{SCRIPT.name} {suite} failed (exit {rc}), full log in {log}:\n{tail}")
    tmp.rename(dest)
    for old in dest.parent.glob(f"root-{suite}-*"):
        if old.is_dir() and old != dest and ".tmp-" not in old.name:
            shutil.rmtree(old, ignore_errors=True)
    print(f"E2E_METRIC root_{suite}_build_s={time.monotonic() - started:.1f}")


def ensure_root(suite: str) -> Path:
    dest = root_dir(suite)
    ready = dest / INSIDE.lstrip("/") / ".venv" / "bin" / "holosc"
    if ready.exists():
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    with open(dest.with_name(f"{dest.name}.lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not ready.exists():
            shutil.rmtree(dest, ignore_errors=True)
            _build(suite, dest)
    return dest
