"""Session fixture `guest_image`: a directory with base.raw, vmlinuz and initrd.img.

Built once by build-guest-image.sh (root and mmdebstrap needed) and cached under
$HOLOSC_TEST_CACHE/guest-<hash of the script> (default ~/.cache/holosc-test), so editing
the script rebuilds the image. The build goes to a temporary directory that is renamed
into place only when complete: a crashed build never leaves a half image behind.
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

SCRIPT = Path(__file__).resolve().with_name("build-guest-image.sh")
FILES = ("base.raw", "vmlinuz", "initrd.img")


def image_dir() -> Path:
    from tests.guestkernel import cache_dir  # here: tests.conftest imports this module

    digest = hashlib.sha256(SCRIPT.read_bytes()).hexdigest()[:16]
    return cache_dir() / f"guest-{digest}"


def _build(dest: Path) -> None:
    if os.geteuid() != 0:
        pytest.fail(f"building the test guest image needs root: run the tests as root ({SCRIPT})")
    for tool, package in (("mmdebstrap", "mmdebstrap"), ("mkfs.ext4", "e2fsprogs")):
        if not (shutil.which(tool) or shutil.which(tool, path="/usr/sbin:/sbin")):
            pytest.fail(f"building the test guest image needs {tool}: apt-get install {package}")
    tmp = dest.with_name(f"{dest.name}.tmp-{os.getpid()}")
    log = dest.with_name(f"{dest.name}.log")
    started = time.monotonic()
    with log.open("w") as handle:
        rc = subprocess.run(
            [str(SCRIPT), str(tmp)], stdout=handle, stderr=subprocess.STDOUT, timeout=1800
        ).returncode
    if rc != 0 or not all((tmp / f).is_file() for f in FILES):
        shutil.rmtree(tmp, ignore_errors=True)
        tail = "".join(log.read_text(errors="replace").splitlines(keepends=True)[-30:])
        pytest.fail(f"{SCRIPT.name} failed (exit {rc}), full log in {log}:\n{tail}")
    tmp.rename(dest)
    print(f"E2E_METRIC guest_image_build_s={time.monotonic() - started:.1f}")


@pytest.fixture(scope="session")
def guest_image() -> Path:
    """Directory with base.raw, vmlinuz and initrd.img of the Debian test guest."""
    dest = image_dir()
    if all((dest / f).is_file() for f in FILES):
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    # One builder at a time (parallel sessions wait, then find the image in place).
    with open(dest.with_name(f"{dest.name}.lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not all((dest / f).is_file() for f in FILES):
            shutil.rmtree(dest, ignore_errors=True)
            _build(dest)
    return dest
