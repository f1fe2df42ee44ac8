"""`holosc import`: libvirt domain XML → holos.yaml.

libvirt cannot run on these machines (no libvirtd, no usable KVM), so the XML files in
tests/data/libvirt are hand-written domains in the shape `virsh dumpxml` prints, and the
name and `--all` paths use a fake `virsh` shell script put first on PATH that prints
canned XML and names. That script is the only fake: everything else runs for real, and
every output is loaded and validated as holos.yaml.
"""

from __future__ import annotations

import os
import stat
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from holosc.core.model import Project
from holosc.core.validate.checks import build_project
from holosc.errors import HolosError
from holosc.load.files import HostFiles
from holosc.load.parse import load_text
from holosc.tools import importer
from tests.conftest import REPO, run_holosc

DATA = REPO / "tests" / "data" / "libvirt"

FULL_SERVICE = {
    "image": "/var/lib/libvirt/images/web.qcow2",
    "image_format": "qcow2",
    "vm": {"vcpu": 4, "memory_mb": 2048, "machine": "q35", "uefi": True, "cpu_model": "host"},
    "devices": [
        {"pci": "0000:01:00.0", "rom_file": "/var/lib/libvirt/vbios/gp104.rom"},
        {"pci": "0000:42:1f.3"},
    ],
}
FULL_WARNINGS = [
    'renamed domain "Web Server_01" to "web-server-01" to satisfy compose naming rules',
    'extra disk "/var/lib/libvirt/images/web-data.raw" skipped; declare it under top-level '
    "volumes: and reference it from the service",
    'disk "vdc" has type "block" (only file-backed disks are imported)',
    'cdrom "sda" (/srv/iso/debian-12.iso) not imported',
    'hostdev type "usb" is not supported (only pci passthrough imports)',
    "interface (type=network, network=default) not imported. holos services share an "
    "internal subnet; expose with ports: instead",
    "interface (type=bridge, bridge=br0) not imported. holos services share an internal "
    "subnet; expose with ports: instead",
    "interface (type=user) not imported. holos services share an internal subnet; "
    "expose with ports: instead",
    'custom emulator "/opt/qemu/bin/qemu-system-x86_64-patched" not imported; holosc runs '
    "qemu-system-x86_64",
    "<filesystem> device not imported",
    "<tpm> device not imported",
    "<numatune> not imported; use vm.extra_args if QEMU needs it",
    "<qemu:commandline> not imported; use vm.extra_args if QEMU needs it",
]

FAKE_VIRSH = """\
#!/bin/sh
# A stand-in for virsh: records its argv, prints canned domains.
printf '%s\\n' "$*" >> "$FAKE_VIRSH_LOG"
[ "$1" = -c ] && shift 2
case "$*" in
  "list --all --name") printf 'web\\n\\ndb\\n\\n' ;;
  "dumpxml -- web") cat "$FAKE_VIRSH_DATA/full.xml" ;;
  "dumpxml -- db") cat "$FAKE_VIRSH_DATA/minimal.xml" ;;
  *) echo "error: failed to get domain '$3'" >&2; exit 1 ;;
esac
"""


def holosc(
    *args: str, path: str | None = None, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    overlay: dict[str, str | None] = {**(env or {})}
    if path is not None:
        overlay["PATH"] = path
    return run_holosc("import", *args, env=overlay, timeout=60)


def validated(text: str) -> Project:
    """The project `text` describes; raises if `holosc validate` would reject it."""
    return build_project(load_text(text, environ={}), HostFiles()).project


def services(text: str) -> dict[str, Any]:
    data = yaml.safe_load(text)
    assert isinstance(data, dict)
    return dict(data["services"])


def warnings(stderr: str, service: str) -> list[str]:
    prefix = f"warning: {service}: "
    return [line[len(prefix) :] for line in stderr.splitlines() if line.startswith(prefix)]


@pytest.fixture
def virsh(tmp_path: Path) -> dict[str, str]:
    """PATH with the fake virsh first, and where it logs its calls."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    script = bin_dir / "virsh"
    script.write_text(FAKE_VIRSH)
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    return {
        "path": f"{bin_dir}{os.pathsep}{os.environ['PATH']}",
        "FAKE_VIRSH_LOG": str(tmp_path / "virsh.log"),
        "FAKE_VIRSH_DATA": str(DATA),
    }


def test_xml_maps_every_field_and_warns_about_the_rest() -> None:
    result = holosc("--xml", str(DATA / "full.xml"))
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("# Imported from libvirt")
    assert services(result.stdout) == {"web-server-01": FULL_SERVICE}
    assert warnings(result.stderr, "web-server-01") == FULL_WARNINGS
    assert result.stderr.count("warning:") == len(FULL_WARNINGS)
    project = validated(result.stdout)
    assert project.name == "web-server-01"
    service = project.service("web-server-01")
    assert [d.pci for d in service.devices] == ["0000:01:00.0", "0000:42:1f.3"]
    assert service.vm.uefi and service.vm.cpu_model == "host"


def test_i440fx_custom_cpu_and_unit_suffix_translate_without_warnings() -> None:
    result = holosc("--xml", str(DATA / "minimal.xml"))
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    assert services(result.stdout) == {
        "db": {
            "image": "/var/lib/libvirt/images/db$$1.img",  # `$$` is a literal `$`
            "image_format": "raw",
            "vm": {"vcpu": 2, "memory_mb": 1024, "machine": "pc", "cpu_model": "Skylake-Client"},
        }
    }
    db = validated(result.stdout).service("db")
    assert db.image.path == "/var/lib/libvirt/images/db$1.img"


def test_no_file_disk_gets_a_placeholder_that_still_validates() -> None:
    result = holosc("--xml", str(DATA / "nodisk.xml"))
    assert result.returncode == 0, result.stderr
    service = services(result.stdout)["tiny-boot"]
    assert service["image"] == "./tiny-boot.qcow2"
    assert service["vm"] == {
        "vcpu": 1,
        "memory_mb": 128,
        "machine": "q35",
        "uefi": True,  # <os firmware='efi'>
        "kernel": "/boot/vmlinuz-6.1",
        "initrd": "/boot/initrd.img-6.1",
        "cmdline": "console=ttyS0 root=/dev/vda",
        "cpu_model": "host",  # host-model
    }
    assert warnings(result.stderr, "tiny-boot") == [
        'renamed domain "---Tiny!!!Boot---" to "tiny-boot" to satisfy compose naming rules',
        'disk "vda" has type "network" (only file-backed disks are imported)',
        "no file-backed disk found; image: ./tiny-boot.qcow2 is a placeholder, "
        "set image: by hand before running `holosc up`",
        "memory 64 MiB is below the minimum; using 128",
    ]
    assert validated(result.stdout).service("tiny-boot").vm.kernel == "/boot/vmlinuz-6.1"


def test_entity_declarations_are_refused() -> None:
    result = holosc("--xml", str(DATA / "entities.xml"))
    assert result.returncode == 3
    assert "DOCTYPE and ENTITY are not allowed" in result.stderr
    assert result.stdout == ""


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("My Web Server", "my-web-server"),
        ("  spaced.name  ", "spaced-name"),
        ("weird___name!!!", "weird-name"),
        ("---trim---", "trim"),
        ("x" * 70, "x" * 63),
        ("a" * 62 + "-b", "a" * 62),
    ],
)
def test_names_follow_the_dns_label_rule(raw: str, expected: str) -> None:
    assert importer.sanitise_name(raw) == expected


def test_a_name_with_nothing_usable_is_an_error() -> None:
    with pytest.raises(HolosError, match="has no usable name"):
        importer.sanitise_name("!!!")


@pytest.mark.parametrize(
    ("value", "unit", "mib"),
    [
        ("2097152", None, 2048),
        ("2097152", "KiB", 2048),
        ("256", "MiB", 256),
        ("2", "g", 2048),
        ("1", "TB", 1024 * 1024),
        ("268435456", "bytes", 256),
        ("1048575", "b", 0),
    ],
)
def test_memory_units_are_binary(value: str, unit: str | None, mib: int) -> None:
    assert importer.memory_bytes(value, unit) // 2**20 == mib


@pytest.mark.parametrize(
    ("machine", "expected"),
    [
        ("q35", "q35"),
        ("pc-q35-8.2", "q35"),
        ("pc", "pc"),
        ("pc-i440fx-7.2", "pc"),
        ("microvm", "microvm"),
    ],
)
def test_machine_types_collapse(machine: str, expected: str) -> None:
    assert importer.collapse_machine(machine) == expected


def test_invalid_xml_and_wrong_root_are_errors() -> None:
    with pytest.raises(HolosError, match="parse libvirt xml"):
        importer.convert_domain("<domain><name>x</domain>")
    with pytest.raises(HolosError, match="not <domain>"):
        importer.convert_domain("<network><name>x</name></network>")
    with pytest.raises(HolosError, match="has no usable name"):
        importer.convert_domain("<domain type='kvm'/>")


def test_domain_names_go_through_virsh_with_the_connect_uri(virsh: dict[str, str]) -> None:
    path = virsh.pop("path")
    result = holosc("-c", "qemu:///system", "web", "db", path=path, env=virsh)
    assert result.returncode == 0, result.stderr
    assert list(services(result.stdout)) == ["web-server-01", "db"]
    assert yaml.safe_load(result.stdout)["name"] == "web-server-01"
    log = Path(virsh["FAKE_VIRSH_LOG"]).read_text().splitlines()
    assert log == ["-c qemu:///system dumpxml -- web", "-c qemu:///system dumpxml -- db"]
    project = validated(result.stdout)
    assert sorted(s.name for s in project.services) == ["db", "web-server-01"]


def test_all_lists_domains_and_writes_the_file(virsh: dict[str, str], tmp_path: Path) -> None:
    path = virsh.pop("path")
    out = tmp_path / "holos.yaml"
    result = holosc("--all", "-o", str(out), "--project", "legacy", path=path, env=virsh)
    assert result.returncode == 0, result.stderr
    assert result.stdout == ""
    assert f"wrote {out} (2 service(s))" in result.stderr
    assert out.stat().st_mode & 0o777 == 0o644
    text = out.read_text()
    assert yaml.safe_load(text)["name"] == "legacy"
    assert list(services(text)) == ["web-server-01", "db"]
    log = Path(virsh["FAKE_VIRSH_LOG"]).read_text().splitlines()
    assert log == ["list --all --name", "dumpxml -- web", "dumpxml -- db"]
    assert validated(text).name == "legacy"


def test_virsh_failures_are_explained(virsh: dict[str, str], tmp_path: Path) -> None:
    path = virsh.pop("path")
    failed = holosc("nosuch", path=path, env=virsh)
    assert failed.returncode == 5
    assert "virsh dumpxml -- nosuch failed (exit 1)" in failed.stderr
    assert "failed to get domain 'nosuch'" in failed.stderr
    empty = tmp_path / "empty"
    empty.mkdir()
    missing = holosc("web", path=str(empty))
    assert missing.returncode == 5
    assert "virsh not found" in missing.stderr and "--xml" in missing.stderr


def test_duplicate_service_names_are_an_error(virsh: dict[str, str]) -> None:
    path = virsh.pop("path")
    result = holosc("db", "db", path=path, env=virsh)
    assert result.returncode == 3
    assert 'service name "db" already imported (rename the source domain)' in result.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--xml", "x.xml", "web"], "--xml cannot be combined with domain names or --all"),
        (["--xml", "x.xml", "--all"], "--xml cannot be combined with domain names or --all"),
        (["--all", "web"], "--all cannot be combined with explicit domain names"),
        ([], "import requires a domain name, --all, or --xml <file>"),
    ],
)
def test_argument_errors(args: list[str], message: str) -> None:
    result = holosc(*args)
    assert result.returncode == 2
    assert message in " ".join(result.stderr.split())


def test_bad_project_name_is_refused() -> None:
    result = holosc("--xml", str(DATA / "minimal.xml"), "--project", "Bad_Name")
    assert result.returncode == 3
    assert "is not a DNS label" in result.stderr


def test_entities_are_refused_in_any_encoding() -> None:
    """The DTD hooks catch what a byte search for `<!DOCTYPE` would miss in UTF-16."""
    text = '<?xml version="1.0" encoding="UTF-16"?>\n'
    text += '<!DOCTYPE d [<!ENTITY a "aaaa">]><domain><name>&a;</name></domain>'
    with pytest.raises(HolosError, match="DOCTYPE and ENTITY are not allowed"):
        importer.convert_domain(text.encode("utf-16"))
    plain = '<?xml version="1.0" encoding="UTF-16"?><domain><name>ok</name></domain>'
    assert importer.convert_domain(plain.encode("utf-16")).name == "ok"
