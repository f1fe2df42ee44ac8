"""The Debian cloud kernel for test guests, fetched once with `apt-get download`.

The test machines have no kernel in /boot. The cloud kernel builds the ACPI button
driver as a module, so button.ko and evdev.ko are kept beside vmlinuz for the tiny
guests that must honour the power button. Cached under $HOLOSC_TEST_CACHE
(default ~/.cache/holosc-test).
"""

from __future__ import annotations

import gzip
import lzma
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

from tests.conftest import require_tool


def run(argv: list[str], **kwargs: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, check=True, text=True, capture_output=True, **kwargs)  # type: ignore[call-overload, no-any-return]


def cache_dir() -> Path:
    default = Path.home() / ".cache" / "holosc-test"
    return Path(os.environ.get("HOLOSC_TEST_CACHE", default))


def _read_module(path: Path) -> bytes:
    if path.suffix == ".xz":
        return lzma.decompress(path.read_bytes())
    return path.read_bytes()


# Modules kept beside vmlinuz: the power button, and virtio disks (in load order) for
# guests that look at their block devices.
MODULES = (
    "acpi/button",
    "input/evdev",
    "virtio/virtio_ring",
    "virtio/virtio",
    "virtio/virtio_pci_legacy_dev",
    "virtio/virtio_pci_modern_dev",
    "virtio/virtio_pci",
    "block/virtio_blk",
)
# And virtio-net (after the virtio modules above), paths below the modules' kernel/.
NET_MODULES = ("net/core/failover", "drivers/net/net_failover", "drivers/net/virtio_net")


def module_files() -> list[str]:
    """The file names of every kept module, in load order."""
    return [f"{m.split('/')[1]}.ko" for m in MODULES] + [
        f"{m.rsplit('/', 1)[1]}.ko" for m in NET_MODULES
    ]


def _fetch_kernel(dest: Path) -> None:
    """apt-get download the Debian cloud kernel and keep vmlinuz + two modules."""
    apt = require_tool("apt-get")
    dpkg_deb = require_tool("dpkg-deb")
    with tempfile.TemporaryDirectory() as tmp:
        run([apt, "download", "linux-image-cloud-amd64"], cwd=tmp)
        meta = next(Path(tmp).glob("linux-image-cloud-amd64_*.deb"))
        depends = run([dpkg_deb, "-f", str(meta), "Depends"]).stdout
        image = next(d.split()[0] for d in depends.split(",") if "linux-image-" in d)
        run([apt, "download", image], cwd=tmp)
        deb = next(Path(tmp).glob(f"{image}_*.deb"))
        root = Path(tmp) / "root"
        run([dpkg_deb, "-x", str(deb), str(root)])
        tmp_dest = Path(tmp) / "out"
        tmp_dest.mkdir()
        shutil.copy(next(root.glob("boot/vmlinuz-*")), tmp_dest / "vmlinuz")
        for mod in MODULES:
            src = next(root.glob(f"lib/modules/*/kernel/drivers/{mod}.ko*"))
            (tmp_dest / f"{mod.split('/')[1]}.ko").write_bytes(_read_module(src))
        for mod in NET_MODULES:
            src = next(root.glob(f"lib/modules/*/kernel/{mod}.ko*"))
            (tmp_dest / f"{mod.rsplit('/', 1)[1]}.ko").write_bytes(_read_module(src))
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.rmtree(dest, ignore_errors=True)  # a cache from before a module was added
        shutil.copytree(tmp_dest, dest)


@pytest.fixture(scope="session")
def guest_kernel() -> Path:
    """Directory with vmlinuz, button.ko and evdev.ko (downloaded once, then cached)."""
    require_tool("qemu-system-x86_64")
    dest = cache_dir() / "kernel"
    if not all((dest / name).exists() for name in module_files()):
        try:
            _fetch_kernel(dest)
        except (subprocess.CalledProcessError, StopIteration) as exc:
            detail = getattr(exc, "stderr", "") or "package layout not as expected"
            pytest.fail(f"cannot fetch the Debian cloud kernel into {dest}: {exc}\n{detail}")
    return dest


READY_MARK = "holos-test: ready"


def newc(entries: list[tuple[str, int, bytes]]) -> bytes:
    """A cpio archive in the kernel's "newc" format (see Documentation/.../ramfs)."""
    out = bytearray()
    for ino, (name, mode, data) in enumerate([*entries, ("TRAILER!!!", 0, b"")], start=1):
        encoded = name.encode() + b"\0"
        fields = (ino, mode, 0, 0, 1, 0, len(data), 0, 0, 0, 0, len(encoded), 0)
        out += ("070701" + "".join(f"{v:08X}" for v in fields)).encode() + encoded
        out += b"\0" * (-len(out) % 4) + data
        out += b"\0" * (-len(out) % 4)
    return bytes(out)


INIT = """#!/bin/busybox sh
export PATH=/bin
/bin/busybox --install -s /bin
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
insmod /evdev.ko
insmod /button.ko
for d in /sys/class/input/event*; do
  grep -q "Power Button" "$d/device/name" && ev="/dev/input/${d##*/}"
done
echo "READY_MARK power button at $ev"
"""
POWER_BUTTON = 'head -c 1 "$ev" >/dev/null\necho "holos-test: button pressed"\npoweroff -f\n'
INIT_ACPI = INIT + POWER_BUTTON
INIT_IGNORE = INIT + "while :; do sleep 3600; done\n"
# The "net" guest: virtio-net, and for 90 s (in the background, so the power button
# still works) it pings the all-nodes group of every NIC but the first (the NAT NIC) over
# IPv6 link-local addresses, which need no configuration, and logs each neighbour once:
# "holos-test: peer eth1 fe80::...".
PEER_MARK = "holos-test: peer"
INIT_NET = (
    INIT
    + """for m in NET; do insmod /$m; done
for d in /sys/class/net/eth*; do ip link set "${d##*/}" up; done
(
  end=$(( $(cut -d. -f1 /proc/uptime) + 90 ))
  while [ "$(cut -d. -f1 /proc/uptime)" -lt "$end" ]; do
    for d in /sys/class/net/eth*; do
      i=${d##*/}
      [ "$i" = eth0 ] && continue
      me=$(ip -6 -o addr show dev "$i" scope link | sed -n "s/.*inet6 \\([^/]*\\).*/\\1/p")
      ping6 -c 2 -w 3 -I "$i" ff02::1 2>/dev/null \\
        | sed -n "s/^[0-9]* bytes from \\([^:]*:[^ ]*\\):.*/\\1/p" | while read -r a; do
            [ "$a" = "$me" ] && continue
            grep -qx "$i $a" /seen 2>/dev/null && continue
            echo "$i $a" >>/seen; echo "PEER_MARK $i $a"
          done
    done
    sleep 2
  done
) &
"""
    + POWER_BUTTON
)


@pytest.fixture(scope="session")
def initramfs(guest_kernel: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Initramfs images: "acpi" powers off on the button, "ignore" sleeps forever, "net"
    also reports its neighbours on its networks (INIT_NET) and powers off on the button."""
    busybox = require_tool("busybox")
    d = tmp_path_factory.mktemp("initramfs")
    images = {}
    net = " ".join(module_files()[2:])
    for kind, init in (
        ("acpi", INIT_ACPI),
        ("ignore", INIT_IGNORE),
        ("net", INIT_NET.replace("NET", net).replace("PEER_MARK", PEER_MARK)),
    ):
        entries = [
            *((name, 0o40755, b"") for name in ("bin", "dev", "proc", "sys")),
            ("bin/busybox", 0o100755, Path(busybox).read_bytes()),
            ("button.ko", 0o100644, (guest_kernel / "button.ko").read_bytes()),
            ("evdev.ko", 0o100644, (guest_kernel / "evdev.ko").read_bytes()),
            *(
                (name, 0o100644, (guest_kernel / name).read_bytes())
                for name in (module_files()[2:] if kind == "net" else [])
            ),
            ("init", 0o100755, init.replace("READY_MARK", READY_MARK).encode()),
        ]
        images[kind] = d / f"{kind}.cpio.gz"
        images[kind].write_bytes(gzip.compress(newc(entries), mtime=0))
    return images


def tiny_project(
    directory: Path, text: str, guest_kernel: Path, initramfs: dict[str, Path]
) -> Path:
    """A project of tiny guests in `directory`: holos.yaml, the kernel as ./vmlinuz, the
    power-button initramfs as ./acpi.cpio.gz, and a project key pair beside it
    (`directory.parent / "key"`, for HOLOSC_SSH_KEY)."""
    directory.mkdir()
    (directory / "holos.yaml").write_text(text)
    shutil.copy(guest_kernel / "vmlinuz", directory / "vmlinuz")
    shutil.copy(initramfs["acpi"], directory / "acpi.cpio.gz")
    key = directory.parent / "key"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
    return directory
