"""libvirt domain XML → holos.yaml: the mapping behind `holosc import`.

`convert_domain` and `compose_document` are pure; `virsh_dumpxml` and `virsh_list` are
the only I/O (one `virsh` subprocess each). Everything libvirt describes that holos.yaml
cannot express is reported as a warning, never silently dropped. Devices every holosc VM
gets anyway (graphics, video, serial, console, input, controllers, balloon, rng) are
ignored without a warning.
"""

from __future__ import annotations

import dataclasses
import os
import re
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from typing import Any
from xml.parsers import expat

from holosc.core import quantities
from holosc.core.render.escape import yaml_document
from holosc.core.validate.checker import NAME
from holosc.errors import Diagnostic, HolosError, RuntimeCommandError
from holosc.host import run

MAX_XML_BYTES = 4 * 1024 * 1024
MIN_MEMORY_MB, MAX_VCPU = 128, 255  # the schema's bounds for vm.memory_mb and vm.vcpu
HEADER = "# Imported from libvirt by `holosc import`. Review the warnings it printed.\n"
_UNITS = {
    **dict.fromkeys(("", "k", "kb", "kib"), 1024),
    **dict.fromkeys(("b", "bytes"), 1),
    **dict.fromkeys(("m", "mb", "mib"), 1024**2),
    **dict.fromkeys(("g", "gb", "gib"), 1024**3),
    **dict.fromkeys(("t", "tb", "tib"), 1024**4),
}
_DOCTYPE = re.compile(rb"<!\s*(DOCTYPE|ENTITY)", re.IGNORECASE)
_HOST_CPU = {"host-passthrough": "host", "host-model": "host", "maximum": "max"}
# Elements holosc provides itself or that have no meaning for it: not worth a warning.
_IGNORED = {
    "controller",
    "graphics",
    "video",
    "serial",
    "console",
    "channel",
    "input",
    "memballoon",
    "rng",
    "emulator",  # reported separately when it is not a stock QEMU
    "disk",
    "interface",
    "hostdev",
    "sound",
    "audio",
    "panic",
}
_STOCK_EMULATORS = {"qemu-system-x86_64", "qemu-kvm", "kvm"}


@dataclasses.dataclass(frozen=True, slots=True)
class Imported:
    """One domain as a holos.yaml service, plus what could not be translated."""

    name: str
    service: dict[str, Any]
    warnings: tuple[str, ...]


def sanitise_name(raw: str) -> str:
    """The DNS-label form of a domain name: `My Web Server` → `my-web-server`.

    :raises HolosError: when nothing usable is left.
    """
    text = re.sub(r"[^a-z0-9-]+", "-", raw.strip().lower()).strip("-")[:63].rstrip("-")
    if not text:
        raise HolosError(f"domain {raw!r} has no usable name")
    return text


def memory_bytes(value: str, unit: str | None) -> int:
    """libvirt's `<memory unit=...>`: KiB by default, every unit binary.

    :raises ValueError: on an unknown unit or a non-integer value.
    """
    key = (unit or "").strip().lower()
    if key not in _UNITS:
        raise ValueError(f"unknown memory unit {unit!r}")
    return int(value.strip()) * _UNITS[key]


def parse_domain_xml(text: str | bytes, label: str) -> ET.Element:
    """The `<domain>` element of `text`, refusing DTDs and entities (entity expansion).

    :raises HolosError: on invalid XML or a root that is not `<domain>`.
    """
    data = text.encode() if isinstance(text, str) else text
    if len(data) > MAX_XML_BYTES:
        raise HolosError(f"{label}: domain XML is larger than {MAX_XML_BYTES} bytes")
    if _DOCTYPE.search(data):
        raise HolosError(f"{label}: parse libvirt xml: DOCTYPE and ENTITY are not allowed")
    try:
        root = _parse(data)
    except ET.ParseError as exc:
        raise HolosError(f"{label}: parse libvirt xml: {exc}") from exc
    except _Forbidden as exc:
        raise HolosError(f"{label}: parse libvirt xml: {exc}") from exc
    if root.tag != "domain":
        raise HolosError(f"{label}: parse libvirt xml: root element is <{root.tag}>, not <domain>")
    return root


class _Forbidden(Exception):
    pass


def _parse(data: bytes) -> ET.Element:
    """An element tree built by expat with every DTD hook refusing (what defusedxml does):
    the byte check above cannot see a DOCTYPE in UTF-16, expat can."""

    def forbid(*_: object) -> Any:
        raise _Forbidden("DOCTYPE and ENTITY are not allowed")

    def name(raw: str) -> str:  # "uri}local" → ElementTree's "{uri}local"
        return "{" + raw if "}" in raw else raw

    builder = ET.TreeBuilder()
    parser = expat.ParserCreate(namespace_separator="}")
    parser.StartDoctypeDeclHandler = forbid
    parser.EntityDeclHandler = forbid
    parser.UnparsedEntityDeclHandler = forbid
    parser.ExternalEntityRefHandler = forbid
    parser.StartElementHandler = lambda tag, attrs: builder.start(
        name(tag), {name(k): v for k, v in attrs.items()}
    )
    parser.EndElementHandler = lambda tag: builder.end(name(tag))
    parser.CharacterDataHandler = builder.data
    try:
        parser.Parse(data, True)
    except expat.ExpatError as exc:
        raise ET.ParseError(str(exc)) from exc
    except (ValueError, LookupError) as exc:  # an encoding pyexpat cannot decode (utf-7)
        declared = re.search(rb"""encoding\s*=\s*["']([^"']{0,40})""", data[:200])
        encoding = declared[1].decode("ascii", "replace") if declared else "?"
        raise ET.ParseError(
            f"line 1: cannot read the declared encoding {encoding!r} ({exc}); use UTF-8"
        ) from exc
    return builder.close()


def convert_domain(text: str | bytes, label: str = "domain") -> Imported:
    """One libvirt domain as a holos.yaml service.

    :raises HolosError: on invalid XML or a domain without a usable name.
    """
    root = parse_domain_xml(text, label)
    raw_name = (root.findtext("name") or "").strip()
    if not raw_name:
        raise HolosError(f"{label}: domain has no usable name")
    name = sanitise_name(raw_name)
    notes: list[str] = []
    if name != raw_name:
        notes.append(f'renamed domain "{raw_name}" to "{name}" to satisfy compose naming rules')
    service: dict[str, Any] = {}
    service.update(_disks(root, name, notes))
    vm = _vm(root, notes)
    if vm:
        service["vm"] = vm
    devices = _hostdevs(root, notes)
    if devices:
        service["devices"] = devices
    _interfaces(root, notes)
    _unsupported(root, notes)
    return Imported(name, service, tuple(notes))


def _vm(root: ET.Element, notes: list[str]) -> dict[str, Any]:
    vm: dict[str, Any] = {}
    vcpu = _int(root.findtext("vcpu"))
    if vcpu is not None and vcpu >= 1:
        if vcpu > MAX_VCPU:
            notes.append(f"vcpu {vcpu} is above the maximum of {MAX_VCPU}; using {MAX_VCPU}")
        vm["vcpu"] = min(vcpu, MAX_VCPU)
    memory = _memory_mb(root, notes)
    if memory is not None:
        vm["memory_mb"] = memory
    os_el = root.find("os")
    if os_el is not None:
        vm.update(_os(os_el, notes))
    cpu = _cpu_model(root.find("cpu"))
    if cpu:
        vm["cpu_model"] = cpu
    return vm


def _memory_mb(root: ET.Element, notes: list[str]) -> int | None:
    element = root.find("currentMemory")
    if element is None or not (element.text or "").strip():
        element = root.find("memory")
    if element is None or not (element.text or "").strip():
        notes.append("no <memory> found; vm.memory_mb keeps its default")
        return None
    try:
        mb = memory_bytes(element.text or "", element.get("unit")) // 2**20
    except ValueError as exc:
        notes.append(f"memory not imported: {exc}")
        return None
    if mb < MIN_MEMORY_MB:
        notes.append(f"memory {mb} MiB is below the minimum; using {MIN_MEMORY_MB}")
        return MIN_MEMORY_MB
    return mb


def _os(os_el: ET.Element, notes: list[str]) -> dict[str, Any]:
    vm: dict[str, Any] = {}
    type_el = os_el.find("type")
    if type_el is not None:
        arch = type_el.get("arch")
        if arch and arch != "x86_64":
            notes.append(f'arch "{arch}" not imported: holosc runs qemu-system-x86_64 guests')
        machine = type_el.get("machine")
        if machine:
            vm["machine"] = collapse_machine(machine)
    loader = (os_el.findtext("loader") or "").strip()
    if loader or os_el.get("firmware") == "efi":
        vm["uefi"] = True
    for key in ("kernel", "initrd", "cmdline"):
        value = (os_el.findtext(key) or "").strip()
        if value and (key == "kernel" or "kernel" in vm):
            vm[key] = _literal(value)
    return vm


def collapse_machine(machine: str) -> str:
    """`pc-q35-8.2` → `q35`, `pc-i440fx-7.2` → `pc`; anything else as is."""
    if machine == "q35" or machine.startswith("pc-q35"):
        return "q35"
    if machine == "pc" or machine.startswith("pc-i440fx"):
        return "pc"
    return machine


def _cpu_model(cpu: ET.Element | None) -> str | None:
    if cpu is None:
        return None
    mode = cpu.get("mode")
    if mode in _HOST_CPU:
        return _HOST_CPU[mode]
    model = (cpu.findtext("model") or "").strip()
    return model or None


def _disks(root: ET.Element, name: str, notes: list[str]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for disk in root.iterfind("devices/disk"):
        device = disk.get("device") or "disk"
        target = _attr(disk, "target", "dev") or "?"
        source = _attr(disk, "source", "file")
        if device != "disk":
            if source:
                notes.append(f'{device} "{target}" ({source}) not imported')
            continue
        kind = disk.get("type") or "file"
        if kind != "file" or not source:
            notes.append(f'disk "{target}" has type "{kind}" (only file-backed disks are imported)')
        elif result:
            notes.append(
                f'extra disk "{source}" skipped; declare it under top-level volumes: '
                "and reference it from the service"
            )
        else:
            result["image"] = _literal(source)
            fmt = _attr(disk, "driver", "type")
            if fmt in ("qcow2", "raw"):
                result["image_format"] = fmt
            elif fmt:
                notes.append(f'disk "{target}" has format "{fmt}"; holosc takes qcow2 or raw')
    if not result:
        result["image"] = f"./{name}.qcow2"
        notes.append(
            f"no file-backed disk found; image: ./{name}.qcow2 is a placeholder, "
            "set image: by hand before running `holosc up`"
        )
    return result


def _hostdevs(root: ET.Element, notes: list[str]) -> list[dict[str, str]]:
    devices: list[dict[str, str]] = []
    for hostdev in root.iterfind("devices/hostdev"):
        kind = hostdev.get("type") or "?"
        address = hostdev.find("source/address")
        if kind != "pci" or address is None:
            notes.append(f'hostdev type "{kind}" is not supported (only pci passthrough imports)')
            continue
        try:
            pci = _pci_address(address)
        except ValueError as exc:
            notes.append(f"hostdev not imported: {exc}")
            continue
        device = {"pci": pci}
        rom = _attr(hostdev, "rom", "file")
        if rom:
            device["rom_file"] = _literal(rom)
        devices.append(device)
    return devices


def _pci_address(address: ET.Element) -> str:
    """`<address domain='0x0000' bus='0x01' slot='0x00' function='0x0'/>` → 0000:01:00.0."""
    try:
        fields = [int(address.get(k) or "0", 16) for k in ("domain", "bus", "slot", "function")]
    except ValueError as exc:
        raise ValueError(f"bad PCI address {dict(address.attrib)}") from exc
    domain, bus, slot, function = fields
    return quantities.normalise_pci(f"{domain:04x}:{bus:02x}:{slot:02x}.{function:x}")


def _interfaces(root: ET.Element, notes: list[str]) -> None:
    for interface in root.iterfind("devices/interface"):
        source = interface.find("source")
        attrs = source.attrib if source is not None else {}
        where = next(
            (f"{k}={attrs[k]}" for k in ("network", "bridge", "dev") if attrs.get(k)),
            "",
        )
        described = ", ".join(x for x in (f"type={interface.get('type') or '?'}", where) if x)
        notes.append(
            f"interface ({described}) not imported. holos services share an internal "
            "subnet; expose with ports: instead"
        )


def _unsupported(root: ET.Element, notes: list[str]) -> None:
    if root.get("type") not in (None, "kvm", "qemu"):
        notes.append(f'domain type "{root.get("type")}" is not QEMU/KVM; imported anyway')
    emulator = (root.findtext("devices/emulator") or "").strip()
    if emulator and os.path.basename(emulator) not in _STOCK_EMULATORS:
        notes.append(f'custom emulator "{emulator}" not imported; holosc runs qemu-system-x86_64')
    devices = root.find("devices")
    for child in devices if devices is not None else ():
        if child.tag not in _IGNORED:
            notes.append(f"<{child.tag}> device not imported")
    for path in ("numatune", "cputune", "memoryBacking", "cpu/numa", "qemu:commandline"):
        if root.find(path, {"qemu": "http://libvirt.org/schemas/domain/qemu/1.0"}) is not None:
            notes.append(f"<{path}> not imported; use vm.extra_args if QEMU needs it")


def compose_document(imported: Sequence[Imported], project: str | None = None) -> str:
    """The holos.yaml text for `imported` services, in order.

    :raises HolosError: on two domains with the same service name or a bad project name.
    """
    services: dict[str, Any] = {}
    for item in imported:
        if item.name in services:
            raise HolosError(
                f'{item.name}: service name "{item.name}" already imported '
                "(rename the source domain)"
            )
        services[item.name] = item.service
    name = project or (imported[0].name if imported else "imported")
    if not NAME.fullmatch(name):
        raise HolosError(f"project name {name!r} is not a DNS label (e.g. my-stack)")
    return HEADER + yaml_document({"name": name, "services": services})


def virsh_dumpxml(domain: str, connect: str | None = None) -> str:
    """`virsh [-c URI] dumpxml DOMAIN`.

    :raises RuntimeCommandError: when virsh is missing or fails.
    """
    return _virsh(["dumpxml", "--", domain], connect)


def virsh_list(connect: str | None = None) -> list[str]:
    """Every defined domain: `virsh [-c URI] list --all --name`, blank lines skipped."""
    names = [line.strip() for line in _virsh(["list", "--all", "--name"], connect).splitlines()]
    return [n for n in names if n]


def _virsh(args: list[str], connect: str | None) -> str:
    argv = ["virsh", *(["-c", connect] if connect else []), *args]
    hint = (
        "install libvirt-clients, or export the XML elsewhere with `virsh dumpxml NAME` "
        "and use --xml FILE"
    )
    return run.run(argv, timeout=120, hint=hint).stdout


def _error(message: str, hint: str | None = None) -> RuntimeCommandError:
    return RuntimeCommandError(message, [Diagnostic(message, file="holosc", hint=hint)])


def _attr(element: ET.Element, child: str, key: str) -> str | None:
    found = element.find(child)
    value = found.get(key) if found is not None else None
    return value.strip() if value and value.strip() else None


def _int(text: str | None) -> int | None:
    try:
        return int((text or "").strip())
    except ValueError:
        return None


def _literal(value: str) -> str:
    """A value holos.yaml reads back unchanged: `$` would start an interpolation."""
    return value.replace("$", "$$")
