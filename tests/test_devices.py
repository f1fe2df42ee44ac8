"""`holosc devices` and the compile-time passthrough checks, against a sysfs tree the test
builds (devices with class/vendor/device files, driver and iommu_group links, and
kernel/iommu_groups/N/devices) and once against this machine's real /sys."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from holosc.core.quantities import PCI_PATTERN
from holosc.core.validate.checks import build_project
from holosc.load.files import HostFiles
from holosc.load.parse import load_text
from holosc.tools import devices as D
from tests.conftest import run_holosc

PCI_IDS = """\
# a few lines in the format of /usr/share/misc/pci.ids
10de  NVIDIA Corporation
\t1b80  GP104 [GeForce GTX 1080]
\t10f0  GP104 High Definition Audio Controller
\t\t10de 1234  a subsystem line, ignored
144d  Samsung Electronics Co Ltd
\ta808  NVMe SSD Controller SM981/PM981/PM983
C 03  Display controller
\t00  VGA compatible controller
\t\t00  VGA controller
\t02  3D controller
C 04  Multimedia controller
\t03  Audio device
"""

# address: (class, vendor, device, driver, iommu group)
FAKE = {
    "0000:00:00.0": ("0x060000", "0x8086", "0x1237", None, 0),
    "0000:00:01.0": ("0x060400", "0x8086", "0x1901", "pcieport", 1),
    "0000:01:00.0": ("0x030000", "0x10de", "0x1b80", "vfio-pci", 1),
    "0000:01:00.1": ("0x040300", "0x10de", "0x10f0", "snd_hda_intel", 1),
    "0000:02:00.0": ("0x010802", "0x144d", "0xa808", "nvme", 2),
    "0000:03:00.0": ("0x030200", "0x10de", "0x1e04", "nvidia", 3),
}


def make_sysfs(root: Path, *, iommu: bool = True) -> Path:
    """A sysfs tree shaped like the kernel's, with relative symlinks like the real one."""
    devices = root / "bus" / "pci" / "devices"
    devices.mkdir(parents=True)
    for address, (klass, vendor, device, driver, group) in FAKE.items():
        d = devices / address
        d.mkdir()
        for name, value in (("class", klass), ("vendor", vendor), ("device", device)):
            (d / name).write_text(value + "\n")
        if driver:
            (d / "driver").symlink_to(f"../../../bus/pci/drivers/{driver}")
        if iommu:
            (d / "iommu_group").symlink_to(f"../../../kernel/iommu_groups/{group}")
            members = root / "kernel" / "iommu_groups" / str(group) / "devices"
            members.mkdir(parents=True, exist_ok=True)
            (members / address).symlink_to(f"../../../../bus/pci/devices/{address}")
    return root


@pytest.fixture
def sysfs(tmp_path: Path) -> Path:
    return make_sysfs(tmp_path / "sys")


def holosc(*args: str, sysfs_root: Path | None = None) -> subprocess.CompletedProcess[str]:
    sysfs = str(sysfs_root) if sysfs_root is not None else None
    return run_holosc(*args, env={"HOLOSC_SYSFS_ROOT": sysfs}, timeout=60)


def test_scan_reads_ids_names_drivers_and_groups(sysfs: Path) -> None:
    inventory = D.scan(sysfs, D.parse_pci_ids(PCI_IDS))
    assert inventory.iommu_enabled
    assert [d.address for d in inventory.devices] == sorted(FAKE)
    gpu = inventory.get("0000:01:00.0")
    assert gpu is not None
    assert (gpu.class_code, gpu.vendor_id, gpu.device_id) == ("0300", "10de", "1b80")
    assert gpu.class_name == "VGA compatible controller"
    assert gpu.vendor_name == "NVIDIA Corporation"
    assert gpu.device_name == "GP104 [GeForce GTX 1080]"
    assert gpu.driver == "vfio-pci" and gpu.is_vfio
    assert gpu.iommu_group == 1
    assert gpu.group_members == ("0000:00:01.0", "0000:01:00.1")
    host_bridge = inventory.get("0000:00:00.0")
    assert host_bridge is not None and host_bridge.driver is None
    assert host_bridge.group_members == ()
    assert D.describe(gpu) == (
        "0000:01:00.0 VGA compatible controller [0300]: "
        "NVIDIA Corporation GP104 [GeForce GTX 1080] [10de:1b80]"
    )


def test_names_fall_back_to_hex_ids_without_pci_ids(sysfs: Path) -> None:
    nvme = D.scan(sysfs).get("0000:02:00.0")
    assert nvme is not None and nvme.vendor_name is None and nvme.device_name is None
    assert D.describe(nvme) == "0000:02:00.0 Non-Volatile memory controller [0108]: [144d:a808]"
    assert D.load_pci_ids([sysfs / "missing.ids"]) == D.PciIds()


def test_cli_json_lists_every_device_with_its_group(sysfs: Path) -> None:
    result = holosc("devices", "--json", sysfs_root=sysfs)
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["iommu_enabled"] is True and data["sysfs_root"] == str(sysfs)
    by_address = {d["address"]: d for d in data["devices"]}
    assert sorted(by_address) == sorted(FAKE)
    audio = by_address["0000:01:00.1"]
    assert audio["class"] == "0403" and audio["vendor"] == "10de" and audio["device"] == "10f0"
    assert audio["driver"] == "snd_hda_intel" and audio["vfio"] is False
    assert audio["iommu_group"] == 1
    assert audio["group_members"] == ["0000:00:01.0", "0000:01:00.0"]
    assert by_address["0000:01:00.0"]["vfio"] is True
    assert by_address["0000:00:00.0"]["driver"] is None


def test_cli_text_flags_devices_not_bound_to_vfio(sysfs: Path) -> None:
    result = holosc("devices", sysfs_root=sysfs)
    assert result.returncode == 0, result.stderr
    blocks = result.stdout.split("\n0000:")
    assert len(blocks) == len(FAKE)
    gpu = next(b for b in blocks if "01:00.0 " in b.splitlines()[0])
    assert "  driver: vfio-pci\n" in gpu + "\n"
    assert "iommu group: 1 (with 0000:00:01.0, 0000:01:00.1)" in gpu
    audio = next(b for b in blocks if "01:00.1 " in b.splitlines()[0])
    assert "driver: snd_hda_intel  (not bound to vfio-pci)" in audio
    assert "[10de:10f0]" in audio  # hex ids always shown, names when pci.ids exists
    assert "IOMMU is off" not in result.stderr


def test_cli_gpu_keeps_display_controllers_and_their_group(sysfs: Path) -> None:
    result = holosc("devices", "--gpu", "--json", sysfs_root=sysfs)
    assert result.returncode == 0, result.stderr
    shown = [d["address"] for d in json.loads(result.stdout)["devices"]]
    # The bridge and the audio function share group 1 with the VGA controller.
    assert shown == ["0000:00:01.0", "0000:01:00.0", "0000:01:00.1", "0000:03:00.0"]
    text = holosc("devices", "--gpu", sysfs_root=sysfs).stdout
    assert "0000:02:00.0" not in text and "0000:00:00.0" not in text


def test_cli_without_iommu_says_how_to_enable_it(tmp_path: Path) -> None:
    root = make_sysfs(tmp_path / "sys", iommu=False)
    result = holosc("devices", sysfs_root=root)
    assert result.returncode == 0, result.stderr
    assert "IOMMU is off" in result.stderr and "intel_iommu=on" in result.stderr
    assert result.stdout.count("iommu group: none") == len(FAKE)
    data = json.loads(holosc("devices", "--json", sysfs_root=root).stdout)
    assert data["iommu_enabled"] is False
    assert all(d["iommu_group"] is None for d in data["devices"])
    empty = holosc("devices", "--gpu", sysfs_root=make_sysfs(tmp_path / "none", iommu=False))
    assert empty.returncode == 0


PROJECT = """\
name: gpu
services:
  ml:
    image: ./disk.qcow2
    devices:
      - pci: "01:00.0"
      - pci: "0000:02:00.0"
      - pci: "0000:09:00.0"
  plain:
    image: ./disk.qcow2
"""


def _warnings(root: Path) -> list[str]:
    doc = load_text(PROJECT, directory=root)
    project = build_project(doc, HostFiles()).project
    return [str(d) for d in D.device_warnings(project, root, doc=doc)]


def test_device_warnings_for_missing_and_unbound_devices(sysfs: Path) -> None:
    warnings = _warnings(sysfs)
    assert all(": warning: services.ml.devices[" in w for w in warnings)
    assert warnings == [
        "holos.yaml:6:14: warning: services.ml.devices[0].pci: IOMMU group 1 of 0000:01:00.0 "
        "also holds 0000:01:00.1 (bound to snd_hda_intel) "
        "(hint: bind every device of the group to vfio-pci (or unbind it))",
        "holos.yaml:7:14: warning: services.ml.devices[1].pci: PCI device 0000:02:00.0 is "
        "bound to nvme, not vfio-pci "
        "(hint: bind it before starting, e.g. `driverctl set-override 0000:02:00.0 vfio-pci`)",
        "holos.yaml:8:14: warning: services.ml.devices[2].pci: PCI device 0000:09:00.0 does "
        "not exist on this host "
        "(hint: fine if the project runs on another machine; see `holosc devices`)",
    ]


def test_device_warnings_without_iommu_or_document(tmp_path: Path) -> None:
    root = make_sysfs(tmp_path / "sys", iommu=False)
    project = build_project(load_text(PROJECT, directory=root), HostFiles()).project
    warnings = D.device_warnings(project, root)
    assert {d.severity for d in warnings} == {"warning"}
    assert any("IOMMU is off" in d.message for d in warnings)
    assert warnings[0].path == "services.ml.devices[0].pci" and warnings[0].line is None
    plain = build_project(
        load_text("services: {a: {image: ./x.qcow2}}", directory=root), HostFiles()
    )
    assert D.device_warnings(plain.project, root) == []


def test_real_sysfs_output_is_well_formed() -> None:
    """This machine's /sys: whatever it holds, the output parses and is consistent."""
    result = holosc("devices", "--json")
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["sysfs_root"] == "/sys"
    assert isinstance(data["iommu_enabled"], bool)
    assert data["iommu_enabled"] == bool(
        os.path.isdir("/sys/kernel/iommu_groups") and os.listdir("/sys/kernel/iommu_groups")
    )
    real = sorted(os.listdir("/sys/bus/pci/devices")) if os.path.isdir("/sys/bus/pci") else []
    assert [d["address"] for d in data["devices"]] == real
    for device in data["devices"]:
        assert PCI_PATTERN.match(device["address"])
        assert len(device["class"]) == 4 and len(device["vendor"]) == 4
        assert device["vfio"] == (device["driver"] == "vfio-pci")
    text = holosc("devices")
    assert text.returncode == 0, text.stderr
    assert text.stdout.count("\n") == 3 * len(real)
    assert holosc("devices", "--gpu").returncode == 0
