"""A `:ro` bind mount is read-only on the host side (issue 9, class 8): a real guest that
mounts the share read-write (as a guest user with sudo could) cannot write to it.

The guest is a tiny busybox initramfs on the Debian cloud kernel with the virtio and
virtiofs modules; its init mounts both shares read-write, tries to write to each and
reports on the serial console. The writable share is the control: it proves the guest
really reaches the host directory. Run under a private systemd (root, as virtiofsd from
QEMU 7.2 needs), through `holosc up`, so the compiled launch.sh decides at run time how
this host's virtiofsd makes the share read-only.
"""

from __future__ import annotations

import gzip
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from tests.conftest import require_tool
from tests.guestkernel import _read_module, cache_dir, newc, run
from tests.systemd_harness import PrivateSystemd
from tests.test_lifecycle import systemd  # noqa: F401 (the private systemd fixture)

# (path under lib/modules/*/kernel/, in load order)
MODULES = (
    "drivers/virtio/virtio_ring",
    "drivers/virtio/virtio",
    "drivers/virtio/virtio_pci_legacy_dev",
    "drivers/virtio/virtio_pci_modern_dev",
    "drivers/virtio/virtio_pci",
    "fs/fuse/fuse",
    "fs/fuse/virtiofs",
)
DONE = "holos-test: shares checked"

INIT = """#!/bin/busybox sh
export PATH=/bin
/bin/busybox --install -s /bin
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
for m in MODULES; do insmod /$m.ko || echo "holos-test: insmod $m failed"; done
for share in share0 share1; do
  mkdir -p /mnt/$share
  # Read-write on purpose: the guest's own fstab line says ro, but its root can remount.
  mount -t virtiofs -o rw $share /mnt/$share || echo "holos-test: mount $share failed"
  [ "$(cat /mnt/$share/data.txt)" = "host data" ] && echo "holos-test: $share read host data"
  if echo guest >/mnt/$share/from-guest; then
    echo "holos-test: $share write succeeded"
  else
    echo "holos-test: $share write failed"
  fi
  mkdir /mnt/$share/dir-from-guest 2>/dev/null && echo "holos-test: $share mkdir succeeded"
done
echo "DONE"
while :; do sleep 3600; done
"""

PROJECT = """\
name: share
services:
  guest:
    image: ./disk.qcow2
    stop_grace_period: 2s
    volumes: ["./ro:/ro:ro", "./rw:/rw"]
    vm:
      memory_mb: 256
      kernel: ./vmlinuz
      initrd: ./init.cpio.gz
      cmdline: console=ttyS0 quiet panic=-1
"""


@pytest.fixture(scope="session")
def virtiofs_kernel() -> Path:
    """vmlinuz and the modules above, from one Debian cloud kernel package (cached)."""
    dest = cache_dir() / "kernel-virtiofs"
    if all((dest / f"{m.rsplit('/', 1)[1]}.ko").exists() for m in MODULES):
        return dest
    apt, dpkg_deb = require_tool("apt-get"), require_tool("dpkg-deb")
    try:
        with tempfile.TemporaryDirectory() as tmp:
            run([apt, "download", "linux-image-cloud-amd64"], cwd=tmp)
            meta = next(Path(tmp).glob("linux-image-cloud-amd64_*.deb"))
            depends = run([dpkg_deb, "-f", str(meta), "Depends"]).stdout
            image = next(d.split()[0] for d in depends.split(",") if "linux-image-" in d)
            run([apt, "download", image], cwd=tmp)
            root = Path(tmp) / "root"
            run([dpkg_deb, "-x", str(next(Path(tmp).glob(f"{image}_*.deb"))), str(root)])
            out = Path(tmp) / "out"
            out.mkdir()
            shutil.copy(next(root.glob("boot/vmlinuz-*")), out / "vmlinuz")
            for mod in MODULES:
                src = next(root.glob(f"lib/modules/*/kernel/{mod}.ko*"))
                (out / f"{mod.rsplit('/', 1)[1]}.ko").write_bytes(_read_module(src))
            shutil.rmtree(dest, ignore_errors=True)
            shutil.copytree(out, dest)
    except (subprocess.CalledProcessError, StopIteration) as exc:
        pytest.fail(f"cannot fetch the Debian cloud kernel's virtiofs modules: {exc}")
    return dest


@pytest.fixture
def project(tmp_path: Path, virtiofs_kernel: Path) -> Path:
    d = tmp_path / "project"
    for sub in ("ro", "rw"):
        (d / sub).mkdir(parents=True)
    for sub in ("ro", "rw"):
        (d / sub / "data.txt").write_text("host data\n")
    (d / "holos.yaml").write_text(PROJECT)
    shutil.copy(virtiofs_kernel / "vmlinuz", d / "vmlinuz")
    names = " ".join(m.rsplit("/", 1)[1] for m in MODULES)
    init = INIT.replace("MODULES", names).replace("DONE", DONE)
    entries = [
        *((name, 0o40755, b"") for name in ("bin", "dev", "proc", "sys", "mnt")),
        ("bin/busybox", 0o100755, Path(require_tool("busybox")).read_bytes()),
        *(
            (
                f"{m.rsplit('/', 1)[1]}.ko",
                0o100644,
                (virtiofs_kernel / f"{m.rsplit('/', 1)[1]}.ko").read_bytes(),
            )
            for m in MODULES
        ),
        ("init", 0o100755, init.encode()),
    ]
    (d / "init.cpio.gz").write_bytes(gzip.compress(newc(entries), mtime=0))
    subprocess.run(
        [require_tool("qemu-img"), "create", "-q", "-f", "qcow2", str(d / "disk.qcow2"), "32M"],
        check=True,
    )
    key = tmp_path / "key"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
    return d


def test_guest_cannot_write_to_a_read_only_share(
    systemd: PrivateSystemd,  # noqa: F811 (the fixture imported above)
    project: Path,
) -> None:
    up = systemd.holosc("up", cwd=project, HOLOSC_SSH_KEY=str(project.parent / "key"))
    assert up.returncode == 0, up.stderr
    log = systemd.state / "var-lib-holos" / "instances" / "share" / "guest-0" / "console.log"
    deadline = time.monotonic() + 300
    while DONE not in (text := log.read_text(errors="replace") if log.exists() else ""):
        assert time.monotonic() < deadline, f"guest did not finish:\n{text[-3000:]}"
        time.sleep(0.5)
    lines = [line for line in text.splitlines() if line.startswith("holos-test:")]
    print("GUEST", lines)
    assert "holos-test: share1 write succeeded" in lines, text[-3000:]  # the control
    assert "holos-test: share0 write failed" in lines, text[-3000:]
    assert "holos-test: share0 read host data" in lines  # read-only, not unreadable
    assert "holos-test: share0 mkdir succeeded" not in lines
    assert sorted(p.name for p in (project / "ro").iterdir()) == ["data.txt"]
    assert (project / "rw" / "from-guest").read_text() == "guest\n"
    assert (project / "ro" / "data.txt").read_text() == "host data\n"
    down = systemd.holosc("down", cwd=project, HOLOSC_SSH_KEY=str(project.parent / "key"))
    assert down.returncode == 0, down.stderr
