"""Mount lines in the guest: fstab escaping (written by dash as the first boot does, read
back by libmount's findmnt) and named-volume serials as the guest really sees them (a
real QEMU boots a tiny Linux guest that prints its disks' serials)."""

from __future__ import annotations

import gzip
import re
import subprocess
from pathlib import Path, PurePosixPath

import yaml

from holosc.core.compiler import Output
from tests.conftest import compile_text, require_tool
from tests.guestkernel import MODULES, newc
from tests.test_cases import qemu_argv

TEXT = """\
name: mounts
services:
  db:
    image: debian:12
    volumes:
      - database-primary-storage:/srv/my data
      - "short:/var/lib/with\\ttab"
      - "./share:/mnt/back\\\\slash #x"
volumes:
  database-primary-storage: {size: 16M}
  short: {size: 16M}
"""
TARGETS = ["/srv/my data", "/var/lib/with\ttab", "/mnt/back\\slash #x"]


def _fstab_groups(output: Output) -> list[str]:
    """The `{ grep ... || printf ... >> /etc/fstab; }` step of each mount command."""
    data = output.files[PurePosixPath("mounts/db-0/user-data")].data
    groups = []
    for command in yaml.safe_load(data)["runcmd"]:
        m = re.search(r"\{ grep -qF .*? >> /etc/fstab; \}", command)
        if m:
            groups.append(m[0])
    return groups


def test_fstab_lines_read_back_to_the_targets(tmp_path: Path) -> None:
    sh = require_tool("sh")  # dash on Debian, as cloud-init runs runcmd strings
    findmnt = require_tool("findmnt")
    output = compile_text(TEXT)
    fstab = tmp_path / "fstab"
    fstab.write_text("")
    groups = _fstab_groups(output)
    assert len(groups) == 3
    for _ in range(2):  # a second boot adds nothing
        for group in groups:
            step = group.replace("/etc/fstab", str(fstab))
            subprocess.run([sh, "-c", step], check=True, timeout=30)
    assert len(fstab.read_text().splitlines()) == 3
    listed = subprocess.run(
        [findmnt, "--fstab", "--tab-file", str(fstab), "-n", "-r", "-o", "SOURCE,TARGET"],
        capture_output=True, text=True, check=True, timeout=30,
    ).stdout  # fmt: skip
    # -r prints its own escapes (\x20); undo them to compare with what was asked for.
    rows = [
        [re.sub(r"\\x([0-9a-f]{2})", lambda m: chr(int(m[1], 16)), f) for f in line.split(" ")]
        for line in listed.splitlines()
    ]
    assert [r[1] for r in rows] == TARGETS
    assert rows[0][0] == "/dev/disk/by-id/virtio-vol-databas-d255b14e"


SERIAL_INIT = """#!/bin/busybox sh
/bin/busybox mount -t sysfs sys /sys
for m in virtio_ring virtio virtio_pci_legacy_dev virtio_pci_modern_dev virtio_pci virtio_blk; do
  /bin/busybox insmod /$m.ko
done
/bin/busybox sleep 1
for d in /sys/block/vd*; do
  /bin/busybox echo "holos-serial ${d##*/} $(/bin/busybox cat "$d/serial")"
done
/bin/busybox poweroff -f
"""


def test_volume_serials_are_whole_in_the_guest(tmp_path: Path, guest_kernel: Path) -> None:
    """udev names a virtio disk /dev/disk/by-id/virtio-<serial> from the serial the guest
    reads, which virtio-blk cuts at 20 bytes; the compiled fstab must name that path."""
    qemu = require_tool("qemu-system-x86_64")
    qemu_img = require_tool("qemu-img")
    busybox = require_tool("busybox")
    output = compile_text(TEXT)
    argv = qemu_argv(output, "mounts", "db-0")
    devices = [
        a for a in argv if a.startswith("virtio-blk-pci,drive=vol-")
    ]  # the compiled -device values, verbatim
    assert len(devices) == 2
    initrd = tmp_path / "serial.cpio.gz"
    entries = [
        *((name, 0o40755, b"") for name in ("bin", "dev", "proc", "sys")),
        ("bin/busybox", 0o100755, Path(busybox).read_bytes()),
        ("init", 0o100755, SERIAL_INIT.encode()),
        *(
            (
                f"{m.split('/')[1]}.ko",
                0o100644,
                (guest_kernel / f"{m.split('/')[1]}.ko").read_bytes(),
            )
            for m in MODULES[2:]
        ),
    ]
    initrd.write_bytes(gzip.compress(newc(entries), mtime=0))
    disks = []
    for device in devices:
        drive = re.search(r"drive=([^,]+)", device)[1]  # type: ignore[index]
        image = tmp_path / f"{drive}.qcow2"
        subprocess.run([qemu_img, "create", "-q", "-f", "qcow2", str(image), "16M"], check=True)
        disks += ["-drive", f"id={drive},if=none,format=qcow2,file={image}", "-device", device]
    console = subprocess.run(
        [
            qemu, "-accel", "tcg", "-m", "256", "-display", "none", "-nodefaults",
            "-no-reboot", "-serial", "stdio",
            "-kernel", str(guest_kernel / "vmlinuz"), "-initrd", str(initrd),
            "-append", "console=ttyS0 quiet panic=-1", *disks,
        ],
        capture_output=True, text=True, timeout=300, stdin=subprocess.DEVNULL,
    ).stdout  # fmt: skip
    serials = re.findall(r"holos-serial (vd\w+) (\S*)", console)
    assert len(serials) == 2, console
    seen = {f"/dev/disk/by-id/virtio-{serial}" for _, serial in serials}
    fstab_devices = {
        re.search(r"(?:printf '%s\\n'|echo) '?(/dev/\S+)", g)[1]  # type: ignore[index]
        for g in _fstab_groups(output)
        if "/dev/disk/by-id/" in g
    }
    assert fstab_devices == seen, console
    assert all(len(serial) <= 20 for _, serial in serials)
