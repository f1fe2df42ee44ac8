"""Registry images under a real (private) systemd: image units, immutable digests, prune.

The image server is `python -m http.server` run as a transient unit inside the private
systemd's network namespace (127.0.0.1 there is not the host's); the units reach it
through HOLOSC_IMAGE_MIRROR in the manager's environment (`systemctl set-environment`,
what an admin would do for a mirror). The guests are the tiny busybox kernel+initramfs of
tests/guestkernel.py, so the registry image is only the overlay's backing file: its
bytes are checked with real qemu-io.
"""

from __future__ import annotations

import hashlib
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from holos_runtime.imagecache import backing_file

from holosc.tools import pull
from tests.conftest import require_tool
from tests.guestkernel import READY_MARK, tiny_project
from tests.privacy import not_private
from tests.systemd_harness import PrivateSystemd

UBUNTU = pull.entry_for("ubuntu:noble")
PORT = 8765  # inside the private network namespace: nothing else listens there
MIRROR = f"http://127.0.0.1:{PORT}"
PROJECT = """\
name: img
services:
  web:
    image: ubuntu:noble
    replicas: {replicas}
    stop_grace_period: 20s
    vm:
      memory_mb: 128
      kernel: ./vmlinuz
      initrd: ./acpi.cpio.gz
      cmdline: console=ttyS0 quiet panic=-1
"""
IMAGE_UNIT = "holos-img-image-ubuntu-noble.service"


def make_image(path: Path, pattern: int) -> str:
    """A real 32 MiB qcow2 whose first MiB holds `pattern`; returns its sha256."""
    qemu_img, qemu_io = require_tool("qemu-img"), require_tool("qemu-io")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.unlink(missing_ok=True)
    subprocess.run([qemu_img, "create", "-q", "-f", "qcow2", str(path), "32M"], check=True)
    subprocess.run(
        [qemu_io, "-c", f"write -P {pattern} 0 1M", str(path)], check=True, capture_output=True
    )
    return hashlib.sha256(path.read_bytes()).hexdigest()


def publish(www: Path, pattern: int) -> str:
    """Serve a new ubuntu:noble upstream (image and SHA256SUMS) under the registry paths."""
    image = www / UBUNTU.url.split("://", 1)[1].split("/", 1)[1]
    digest = make_image(image, pattern)
    sums = www / UBUNTU.checksum_url.split("://", 1)[1].split("/", 1)[1]
    sums.write_text(f"{digest} *{image.name}\n")
    return digest


@pytest.fixture
def project(tmp_path: Path, guest_kernel: Path, initramfs: dict[str, Path]) -> Path:
    text = PROJECT.format(replicas=1)
    return tiny_project(tmp_path / "project", text, guest_kernel, initramfs)


@pytest.fixture
def systemd(tmp_path: Path) -> Iterator[PrivateSystemd]:
    sd = PrivateSystemd(tmp_path / "systemd").start()
    try:
        sd.systemctl("set-environment", f"HOLOSC_IMAGE_MIRROR={MIRROR}")
        yield sd
    finally:
        sd.stop()


def serve(sd: PrivateSystemd, www: Path) -> None:
    """The image server, as a transient unit of the private systemd."""
    argv = [sys.executable, "-m", "http.server", str(PORT), "--bind", "127.0.0.1"]
    sd.run(["systemd-run", "--unit=holos-test-www", "--", *argv, "--directory", str(www)])
    probe = f"import socket; socket.create_connection(('127.0.0.1', {PORT}), 1)"
    deadline = time.monotonic() + 30
    while sd.run([sys.executable, "-c", probe], check=False).returncode != 0:
        assert time.monotonic() < deadline, "the image server did not start"
        time.sleep(0.1)


def holosc(sd: PrivateSystemd, project: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return sd.holosc(
        *args, cwd=project, HOLOSC_SSH_KEY=str(project.parent / "key"), HOLOSC_IMAGE_MIRROR=MIRROR
    )


def show(sd: PrivateSystemd, unit: str, prop: str) -> str:
    return sd.systemctl("show", "-p", prop, "--value", unit).stdout.strip()


def wait_state(sd: PrivateSystemd, unit: str, states: tuple[str, ...], timeout: float = 300) -> str:
    deadline = time.monotonic() + timeout
    while (state := show(sd, unit, "ActiveState")) not in states:
        assert time.monotonic() < deadline, f"{unit} stayed {state}"
        assert show(sd, unit, "Result") != "dependency", journal(sd, IMAGE_UNIT)
        time.sleep(0.2)
    return state


def wait_ready(sd: PrivateSystemd, instance: str, boots: int = 1, timeout: float = 300) -> None:
    """The guest listens for the power button (a powerdown sent earlier is lost)."""
    log = sd.state / "var-lib-holos" / "instances" / "img" / instance / "console.log"
    deadline = time.monotonic() + timeout
    while not (log.exists() and log.read_text(errors="replace").count(READY_MARK) >= boots):
        assert time.monotonic() < deadline, f"{instance} not ready"
        time.sleep(0.2)


def journal(sd: PrivateSystemd, unit: str) -> str:
    return sd.run(["journalctl", "--no-pager", "-o", "cat", "-u", unit]).stdout


def cache_files(sd: PrivateSystemd) -> list[str]:
    """Blobs, records, tags and temporary files (not the download locks)."""
    cache = sd.state / "var-lib-holos" / "images"
    return sorted(
        str(p.relative_to(cache))
        for sub in ("blobs", "tags")
        for p in (cache / sub).rglob("*")
        if p.is_file() or p.is_symlink()
    )


def qemu_io_read(disk: Path, *checks: str) -> str:
    """Read-only, shared with a running QEMU (-U); each check is `PATTERN OFFSET LENGTH`."""
    commands = [a for check in checks for a in ("-c", f"read -P {check}")]
    result = subprocess.run(
        [require_tool("qemu-io"), "-r", "-U", *commands, disk],
        capture_output=True,
        text=True,
        check=True,
    )
    return result.stdout


def test_bare_start_pulls_and_disks_keep_their_digest(
    systemd: PrivateSystemd, project: Path, tmp_path: Path
) -> None:
    www = tmp_path / "www"
    v1 = publish(www, 0x11)
    serve(systemd, www)
    assert holosc(systemd, project, "install").returncode == 0

    # A fresh state directory and plain systemd: the image unit downloads and verifies,
    # into a cache that is the manager's alone (systemd would make it 0755 at each start
    # of a unit without StateDirectoryMode=).
    images = systemd.state / "var-lib-holos" / "images"
    systemd.systemctl("start", IMAGE_UNIT)
    assert not_private(images) == {}
    systemd.systemctl("start", "holos-img.target")
    assert wait_state(systemd, "holos-img-web@0.service", ("active", "failed")) == "active"
    log = journal(systemd, IMAGE_UNIT)
    assert f"ubuntu:noble: downloading {MIRROR}/noble/current/" in log, log
    assert re.search(r"ubuntu:noble: verified \d+ MiB", log) and f"sha256:{v1[:12]}" in log, log
    assert cache_files(systemd) == [
        f"blobs/sha256/{v1}",
        f"blobs/sha256/{v1}.json",
        "tags/ubuntu/noble",
    ]

    # Data written through the overlay, then a changed upstream is pulled.
    wait_ready(systemd, "web-0")
    assert holosc(systemd, project, "stop", "web").returncode == 0
    disk0 = systemd.state / "var-lib-holos" / "instances" / "img" / "web-0" / "root.qcow2"
    subprocess.run(
        [require_tool("qemu-io"), "-c", "write -P 0x5a 0 64k", disk0],
        check=True,
        capture_output=True,
    )
    v2 = publish(www, 0x22)
    pulled = holosc(systemd, project, "pull", "ubuntu:noble")
    assert pulled.returncode == 0, pulled.stderr
    assert f"blobs/sha256/{v2}" in pulled.stdout

    # Restarted, the instance still runs on its old digest with its data intact.
    assert holosc(systemd, project, "start", "web").returncode == 0
    assert show(systemd, "holos-img-web@0.service", "ActiveState") == "active"
    wait_ready(systemd, "web-0", boots=2)
    assert holosc(systemd, project, "stop", "web").returncode == 0
    assert backing_file(disk0) == f"../../../images/blobs/sha256/{v1}"
    read = qemu_io_read(disk0, "0x5a 0 64k", "0x11 64k 960k")
    assert "Pattern verification failed" not in read, read

    # A new instance is created on the new digest.
    (project / "holos.yaml").write_text(PROJECT.format(replicas=2))
    up = holosc(systemd, project, "up")
    assert up.returncode == 0, up.stderr
    disk1 = disk0.parent.parent / "web-1" / "root.qcow2"
    assert backing_file(disk1) == f"../../../images/blobs/sha256/{v2}"
    assert "Pattern verification failed" not in qemu_io_read(disk1, "0x22 0 1M")
    listing = holosc(systemd, project, "images").stdout.splitlines()
    tagged, untagged = listing[1].split(), listing[2].split()
    assert tagged[:2] == ["ubuntu:noble", f"sha256:{v2[:12]}"] and tagged[-1] == "img/web-1"
    assert untagged[:2] == ["<none>", f"sha256:{v1[:12]}"] and untagged[-1] == "img/web-0"

    # Prune keeps what an instance uses, and says who; rm refuses it.
    refused = holosc(systemd, project, "images", "rm", f"sha256:{v1[:12]}")
    assert refused.returncode != 0
    assert f"sha256:{v1[:12]} is used by img/web-0" in refused.stderr, refused.stderr
    pruned = holosc(systemd, project, "images", "prune")
    assert pruned.returncode == 0, pruned.stderr
    assert f"kept sha256:{v1[:12]}: used by img/web-0" in pruned.stdout, pruned.stdout
    assert len(cache_files(systemd)) == 5

    wait_ready(systemd, "web-0", boots=3)
    wait_ready(systemd, "web-1")
    assert holosc(systemd, project, "down").returncode == 0
    pruned = holosc(systemd, project, "images", "prune")
    assert pruned.returncode == 0, pruned.stderr
    assert f"removed sha256:{v1[:12]}" in pruned.stdout
    assert cache_files(systemd) == [
        f"blobs/sha256/{v2}",
        f"blobs/sha256/{v2}.json",
        "tags/ubuntu/noble",
    ]
    assert holosc(systemd, project, "images", "prune", "--all").returncode == 0
    assert cache_files(systemd) == []


def test_offline_image_unit_fails_with_one_clear_line(
    systemd: PrivateSystemd, project: Path
) -> None:
    assert holosc(systemd, project, "install").returncode == 0

    systemd.systemctl("start", "holos-img.target")

    assert wait_state(systemd, IMAGE_UNIT, ("active", "failed")) == "failed"
    assert show(systemd, IMAGE_UNIT, "Result") == "exit-code"
    assert wait_state(systemd, "holos-img-web@0.service", ("inactive", "failed")) != "active"
    sums = f"{MIRROR}/noble/current/SHA256SUMS"
    lines = [line for line in journal(systemd, IMAGE_UNIT).splitlines() if "holos-image:" in line]
    assert len(lines) == 1, lines
    assert lines[0].startswith(f"holos-image: ubuntu:noble: cannot fetch {sums}: "), lines
    assert "connect this host" in lines[0] and "holosc pull" in lines[0]
    assert cache_files(systemd) == [], "nothing half-written"

    up = holosc(systemd, project, "up")
    assert up.returncode == 5
    assert f"cannot fetch {sums}" in up.stderr, up.stderr
    assert cache_files(systemd) == []


def test_up_recreate_moves_an_instance_to_the_new_digest(
    systemd: PrivateSystemd, project: Path, tmp_path: Path
) -> None:
    www = tmp_path / "www"
    v1 = publish(www, 0x11)
    serve(systemd, www)
    up = holosc(systemd, project, "up")
    assert up.returncode == 0, up.stderr
    disk = systemd.state / "var-lib-holos" / "instances" / "img" / "web-0" / "root.qcow2"
    assert backing_file(disk) == f"../../../images/blobs/sha256/{v1}"
    wait_ready(systemd, "web-0")

    # --pull moves the tag; the running instance keeps its disk and digest.
    v2 = publish(www, 0x22)
    pulled = holosc(systemd, project, "up", "--pull")
    assert pulled.returncode == 0, pulled.stderr
    assert "recreating" not in pulled.stderr
    assert backing_file(disk) == f"../../../images/blobs/sha256/{v1}"
    assert show(systemd, "holos-img-web@0.service", "NRestarts") == "0"

    # --recreate: stopped, a new disk on the new digest, started again.
    recreated = holosc(systemd, project, "up", "--recreate")
    assert recreated.returncode == 0, recreated.stderr
    assert (
        f"web-0: recreating its disk: ubuntu:noble moved from sha256:{v1[:12]} "
        f"to sha256:{v2[:12]}" in recreated.stderr
    ), recreated.stderr
    assert show(systemd, "holos-img-web@0.service", "ActiveState") == "active"
    assert backing_file(disk) == f"../../../images/blobs/sha256/{v2}"
    wait_ready(systemd, "web-0", boots=2)
    again = holosc(systemd, project, "up", "--recreate")
    assert again.returncode == 0 and "recreating" not in again.stderr, again.stderr

    pruned = holosc(systemd, project, "images", "prune")
    assert f"removed sha256:{v1[:12]}" in pruned.stdout, pruned.stdout
    assert holosc(systemd, project, "down").returncode == 0
