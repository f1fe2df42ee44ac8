"""PCI devices of a host, read from sysfs: what `holosc devices` lists and what the
compile-time passthrough checks look at.

Everything takes the sysfs root as a parameter (default `/sys`) so tests and
`HOLOSC_SYSFS_ROOT` can point it at another tree. This module only reads files; it never
binds drivers or changes anything on the host.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from holosc.core.document import Document, JsonPath
from holosc.core.model import Project
from holosc.errors import Diagnostic

PCI_IDS_CANDIDATES = (Path("/usr/share/misc/pci.ids"), Path("/usr/share/hwdata/pci.ids"))
VFIO_DRIVER = "vfio-pci"
BRIDGE_CLASS = "0604"
# Class names when no pci.ids is installed (the most common ones on a passthrough host).
FALLBACK_CLASSES = {
    "0100": "SCSI storage controller",
    "0106": "SATA controller",
    "0108": "Non-Volatile memory controller",
    "0200": "Ethernet controller",
    "0280": "Network controller",
    "0300": "VGA compatible controller",
    "0302": "3D controller",
    "0380": "Display controller",
    "0403": "Audio device",
    "0600": "Host bridge",
    "0601": "ISA bridge",
    "0604": "PCI bridge",
    "0c03": "USB controller",
    "0c05": "SMBus",
}
FALLBACK_BASE_CLASSES = {
    "01": "Mass storage controller",
    "02": "Network controller",
    "03": "Display controller",
    "04": "Multimedia controller",
    "06": "Bridge",
    "0c": "Serial bus controller",
    "ff": "Unassigned class",
}
IOMMU_HINT = (
    "enable VT-d (Intel) or AMD-Vi/IOMMU (AMD) in the firmware, boot the kernel with "
    "intel_iommu=on (Intel) or amd_iommu=on (AMD) and iommu=pt, then reboot"
)


@dataclasses.dataclass(frozen=True, slots=True)
class PciIds:
    """Names from a pci.ids database; lookups fall back to None."""

    vendors: Mapping[str, str] = dataclasses.field(default_factory=dict)
    devices: Mapping[tuple[str, str], str] = dataclasses.field(default_factory=dict)
    classes: Mapping[str, str] = dataclasses.field(default_factory=dict)

    def class_name(self, code: str) -> str:
        """Subclass name (`0300`), else the base class name (`03`), else `class 0300`."""
        return (
            self.classes.get(code)
            or FALLBACK_CLASSES.get(code)
            or self.classes.get(code[:2])
            or FALLBACK_BASE_CLASSES.get(code[:2])
            or f"class {code}"
        )


@dataclasses.dataclass(frozen=True, slots=True)
class PciDevice:
    """One function under /sys/bus/pci/devices; ids are lowercase hex without 0x."""

    address: str
    class_code: str  # base class + subclass, e.g. "0300"
    vendor_id: str
    device_id: str
    class_name: str
    vendor_name: str | None
    device_name: str | None
    driver: str | None
    iommu_group: int | None
    group_members: tuple[str, ...]  # the other devices of the same IOMMU group

    @property
    def is_vfio(self) -> bool:
        return self.driver == VFIO_DRIVER

    @property
    def is_display(self) -> bool:
        return self.class_code.startswith("03")

    def to_json(self) -> dict[str, Any]:
        return {
            "address": self.address,
            "class": self.class_code,
            "class_name": self.class_name,
            "vendor": self.vendor_id,
            "vendor_name": self.vendor_name,
            "device": self.device_id,
            "device_name": self.device_name,
            "driver": self.driver,
            "vfio": self.is_vfio,
            "iommu_group": self.iommu_group,
            "group_members": list(self.group_members),
        }


@dataclasses.dataclass(frozen=True, slots=True)
class Inventory:
    """The PCI devices of one sysfs tree, sorted by address."""

    devices: tuple[PciDevice, ...]
    iommu_enabled: bool

    def get(self, address: str) -> PciDevice | None:
        return next((d for d in self.devices if d.address == address), None)


def parse_pci_ids(text: str) -> PciIds:
    """Vendor, device and class names from the pci.ids format (see the file's header)."""
    vendors: dict[str, str] = {}
    devices: dict[tuple[str, str], str] = {}
    classes: dict[str, str] = {}
    vendor = base = ""
    in_classes = False
    for line in text.splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        if not line.startswith("\t"):
            in_classes = line.startswith("C ")
            code, name = _split(line[2:] if in_classes else line)
            if in_classes:
                base = code.lower()
                classes[base] = name
            elif len(code) == 4:
                vendor = code.lower()
                vendors[vendor] = name
            else:  # another section (device classes are the only one we read)
                vendor = ""
        elif not line.startswith("\t\t"):
            code, name = _split(line.strip())
            if in_classes and base:
                classes[base + code.lower()] = name
            elif vendor:
                devices[(vendor, code.lower())] = name
    return PciIds(vendors, devices, classes)


def _group_safe(device: PciDevice) -> bool:
    """Whether `device` lets VFIO use its group: vfio-pci, pci-stub, unbound or a bridge."""
    return device.driver in (None, VFIO_DRIVER, "pci-stub") or device.class_code == BRIDGE_CLASS


def _split(line: str) -> tuple[str, str]:
    code, _, name = line.partition(" ")
    return code, name.strip()


def load_pci_ids(candidates: Iterable[Path] = PCI_IDS_CANDIDATES) -> PciIds:
    """The first readable pci.ids of `candidates`, or an empty database."""
    for path in candidates:
        try:
            return parse_pci_ids(path.read_text(encoding="utf-8", errors="replace"))
        except OSError:
            continue
    return PciIds()


def scan(sysfs_root: Path = Path("/sys"), ids: PciIds | None = None) -> Inventory:
    """Every PCI device under `sysfs_root`/bus/pci/devices with its driver and IOMMU group."""
    ids = PciIds() if ids is None else ids
    base = sysfs_root / "bus" / "pci" / "devices"
    addresses = sorted(p.name for p in _entries(base))
    raw = {a: _read_device(base / a) for a in addresses}
    members = _group_members(sysfs_root, raw)
    devices = []
    for address, (klass, vendor, device, driver, group) in raw.items():
        others = tuple(m for m in members.get(group, ()) if m != address)
        devices.append(
            PciDevice(
                address=address,
                class_code=klass,
                vendor_id=vendor,
                device_id=device,
                class_name=ids.class_name(klass),
                vendor_name=ids.vendors.get(vendor),
                device_name=ids.devices.get((vendor, device)),
                driver=driver,
                iommu_group=group,
                group_members=others,
            )
        )
    groups = sysfs_root / "kernel" / "iommu_groups"
    return Inventory(tuple(devices), bool(_entries(groups)))


_Raw = tuple[str, str, str, str | None, int | None]


def _read_device(path: Path) -> _Raw:
    def hexfile(name: str, width: int) -> str:
        try:
            text = (path / name).read_text().strip().lower()
        except OSError:
            return "?" * width
        return text.removeprefix("0x")[:width].rjust(width, "0")

    return (
        hexfile("class", 4),  # the file is 0xCCSSPP; prog-if is not needed
        hexfile("vendor", 4),
        hexfile("device", 4),
        _link_name(path / "driver"),
        _group_number(path / "iommu_group"),
    )


def _link_name(path: Path) -> str | None:
    try:
        return os.path.basename(os.readlink(path))
    except OSError:
        return None


def _group_number(path: Path) -> int | None:
    name = _link_name(path)
    return int(name) if name is not None and name.isdigit() else None


def _group_members(sysfs_root: Path, raw: Mapping[str, _Raw]) -> dict[int | None, list[str]]:
    """Group → member addresses, from /sys/kernel/iommu_groups and the devices' links."""
    members: dict[int | None, set[str]] = {}
    for address, info in raw.items():
        if info[4] is not None:
            members.setdefault(info[4], set()).add(address)
    for group_dir in _entries(sysfs_root / "kernel" / "iommu_groups"):
        if group_dir.name.isdigit():
            found = {p.name for p in _entries(group_dir / "devices")}
            members.setdefault(int(group_dir.name), set()).update(found)
    return {g: sorted(m) for g, m in members.items()}


def _entries(path: Path) -> list[Path]:
    try:
        return list(path.iterdir())
    except OSError:
        return []


def gpu_devices(inventory: Inventory) -> tuple[PciDevice, ...]:
    """Display controllers (class 03xx) and every device sharing an IOMMU group with one."""
    keep = {d.address for d in inventory.devices if d.is_display}
    keep |= {m for d in inventory.devices if d.is_display for m in d.group_members}
    return tuple(d for d in inventory.devices if d.address in keep)


def describe(device: PciDevice) -> str:
    """lspci -nn style: `0000:01:00.0 VGA compatible controller [0300]: NVIDIA ... [10de:1b80]`."""
    name = " ".join(n for n in (device.vendor_name, device.device_name) if n)
    ids = f"[{device.vendor_id}:{device.device_id}]"
    return (
        f"{device.address} {device.class_name} [{device.class_code}]: "
        f"{name + ' ' if name else ''}{ids}"
    )


def render_text(devices: Iterable[PciDevice]) -> str:
    """Three lines per device: identity, driver (flagged unless vfio-pci), IOMMU group."""
    out = []
    for device in devices:
        driver = device.driver or "none"
        flag = "" if device.is_vfio else f"  (not bound to {VFIO_DRIVER})"
        if device.iommu_group is None:
            group = "none"
        else:
            others = ", ".join(device.group_members) or "no other devices"
            group = f"{device.iommu_group} (with {others})"
        out += [describe(device), f"  driver: {driver}{flag}", f"  iommu group: {group}"]
    return "".join(line + "\n" for line in out)


def device_warnings(
    project: Project, sysfs_root: Path = Path("/sys"), *, doc: Document | None = None
) -> list[Diagnostic]:
    """Warnings for `devices:` that cannot be passed through on this host.

    Never errors: the project may be compiled on another machine than the one that runs
    it. With `doc`, each warning carries the position of its `pci:` value.
    """
    wanted = [s for s in project.services if s.devices]
    if not wanted:
        return []
    inventory = scan(sysfs_root)
    result = []
    for service in wanted:
        for i, device in enumerate(service.devices):
            path: JsonPath = ("services", service.name, "devices", i, "pci")
            for message, hint in _device_problems(inventory, device.pci):
                if doc is not None:
                    result.append(doc.diagnostic(path, message, hint=hint, severity="warning"))
                else:
                    where = f"services.{service.name}.devices[{i}].pci"
                    result.append(Diagnostic(message, path=where, hint=hint, severity="warning"))
    return result


def _device_problems(inventory: Inventory, address: str) -> list[tuple[str, str | None]]:
    device = inventory.get(address)
    if device is None:
        return [
            (
                f"PCI device {address} does not exist on this host",
                "fine if the project runs on another machine; see `holosc devices`",
            )
        ]
    problems: list[tuple[str, str | None]] = []
    if not device.is_vfio:
        problems.append(
            (
                f"PCI device {address} is bound to {device.driver or 'no driver'}, "
                f"not {VFIO_DRIVER}",
                f"bind it before starting, e.g. `driverctl set-override {address} vfio-pci`",
            )
        )
    if not inventory.iommu_enabled:
        problems.append(("IOMMU is off on this host, so VFIO passthrough cannot work", IOMMU_HINT))
    # VFIO only hands a group to a guest when every other device in it is bound to vfio-pci
    # (or unbound, pci-stub, or a bridge): Documentation/driver-api/vfio.rst, "Groups,
    # Devices, and IOMMUs".
    for other in device.group_members:
        member = inventory.get(other)
        if member and not _group_safe(member):
            problems.append(
                (
                    f"IOMMU group {device.iommu_group} of {address} also holds {other} "
                    f"(bound to {member.driver or 'no driver'})",
                    "bind every device of the group to vfio-pci (or unbind it)",
                )
            )
    return problems
