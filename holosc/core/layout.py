"""Every name and path holosc derives, with one owner each, in both forms.

Units name paths by specifier (`%S/holos/ssh/<p>/id_ed25519`, the *specifier form*, from
the `STATE`, `CONFIG` and `RUNTIME` roots below); commands name the same paths on this
host (`/var/lib/holos/ssh/<p>/id_ed25519`, the *host form*, from the roots a systemd
manager resolves: holosc.host.systemd.Manager.state_dir, ...). A path function takes
the root and returns the same kind of path, so both forms come from one line.

Unit names are built and parsed here too; every name was checked by holosc.core.names
before it gets here.
"""

from __future__ import annotations

import hashlib
from pathlib import PurePath, PurePosixPath
from typing import TypeVar

from holosc.core import names

Root = TypeVar("Root", bound=PurePath)

# The roots in specifier form: systemd resolves them per manager (system or user).
STATE = PurePosixPath("%S/holos")  # disks, volumes, the project keys, the image cache
CONFIG = PurePosixPath("%E/holos")  # the installed scripts and seeds
RUNTIME = PurePosixPath("%t/holos")  # sockets, pidfiles, the seed ISO
STATE_ENTRIES = ("images", "instances", "volumes", "ssh")  # what STATE holds

# Where the launch scripts look for tools on the host (and doctor checks), in order.
OVMF_PAIRS = (
    ("/usr/share/OVMF/OVMF_CODE_4M.fd", "/usr/share/OVMF/OVMF_VARS_4M.fd"),
    ("/usr/share/OVMF/OVMF_CODE.fd", "/usr/share/OVMF/OVMF_VARS.fd"),
    ("/usr/share/edk2/ovmf/OVMF_CODE.fd", "/usr/share/edk2/ovmf/OVMF_VARS.fd"),
    ("/usr/share/edk2/x64/OVMF_CODE.4m.fd", "/usr/share/edk2/x64/OVMF_VARS.4m.fd"),
    ("/usr/share/qemu/OVMF_CODE.fd", "/usr/share/qemu/OVMF_VARS.fd"),
)
VIRTIOFSD = ("/usr/libexec/virtiofsd", "/usr/lib/qemu/virtiofsd", "/usr/lib/virtiofsd")

# -- unit and instance names


def instance_name(service: str, index: int) -> str:
    return f"{service}-{index}"


def split_instance(name: str) -> tuple[str, int]:
    """("web", 1) for "web-1": the inverse of instance_name."""
    service, _, index = name.rpartition("-")
    return service, int(index)


def host_key_alias(project: str, instance: str) -> str:
    """The name an instance's pinned SSH host key is known by (ssh's HostKeyAlias): every
    guest answers on 127.0.0.1, so the port-less alias tells them apart."""
    return f"{instance}.{project}.holos"


def target_name(project: str) -> str:
    return f"holos-{project}.target"


def helpers_drop_in_dir(project: str) -> str:
    """The drop-in directory of every service of `project` (systemd.unit(5): a unit name
    truncated after a dash), where the host's helper search path goes (host/helpers.py)."""
    return f"holos-{project}-.service.d"


def template_name(project: str, service: str) -> str:
    return f"holos-{project}-{service}@.service"


def instance_unit(project: str, service: str, index: int) -> str:
    return f"holos-{project}-{service}@{index}.service"


def gate_unit(project: str, service: str) -> str:
    return f"holos-{project}-{service}-healthy.service"


def volumes_unit(project: str) -> str:
    return f"holos-{project}-volumes.service"


def console_logs_timer(project: str) -> str:
    """The timer that keeps the project's console logs bounded (and its service)."""
    return f"holos-{project}-console-logs.timer"


def console_logs_unit(project: str) -> str:
    return f"holos-{project}-console-logs.service"


def switch_unit(project: str) -> str:
    """The project's switch (runtime-helpers/switch.py): its networks and NAT filter."""
    return f"holos-{project}-switch.service"


def template_service(project: str, unit: str) -> str | None:
    """ "web" for holos-p-web@.service: the inverse of template_name."""
    prefix, suffix = f"holos-{project}-", "@.service"
    if unit.startswith(prefix) and unit.endswith(suffix):
        return unit[len(prefix) : -len(suffix)]
    return None


# virtio-blk hands the guest at most 20 bytes of serial (VIRTIO_BLK_ID_BYTES); udev names
# the disk /dev/disk/by-id/virtio-<serial> from what the guest reads.
SERIAL_BYTES = 20


def volume_serial(volume: str) -> str:
    """The virtio serial of a named volume's disk: `vol-<name>` when that fits in 20
    bytes, else `vol-` + the name's first 7 characters + `-` + 8 hex digits of its digest
    (stable, distinct per name, and whole in the guest)."""
    serial = f"vol-{volume}"
    if len(serial) <= SERIAL_BYTES:
        return serial
    digest = hashlib.sha256(volume.encode()).hexdigest()
    return f"vol-{volume[:7].rstrip('-')}-{digest[:8]}"


def volume_device(volume: str) -> str:
    """The guest's path of a named volume's disk."""
    return f"/dev/disk/by-id/virtio-{volume_serial(volume)}"


def image_unit(project: str, ref: str) -> str:
    """The oneshot that fetches registry image `name:tag` (Quadlet's `.image` unit)."""
    name, _, tag = ref.partition(":")
    return f"holos-{project}-image-{name}-{tag}.service"


def build_unit(project: str, service: str) -> str:
    """The oneshot that builds a `dockerfile:` service's image (Quadlet's `.build` unit)."""
    return f"holos-{project}-{service}-build.service"


def is_build_unit(unit: str) -> bool:
    return unit.endswith("-build.service") and "@" not in unit


def build_spec(project: str, service: str) -> str:
    """The compiled build of a `dockerfile:` service, below the output directory."""
    return f"{project}/{service}{BUILD_SUFFIX}"


def build_tag(project: str, service: str) -> str:
    """How holos-image overlay and holos-bake name a service's built image in the cache."""
    return f"{project}/{service}"


def is_image_unit(project: str, unit: str) -> bool:
    return unit.startswith(f"holos-{project}-image-") and "@" not in unit and not is_gate(unit)


def unit_label(project: str, unit: str) -> str:
    """db-0 for holos-p-db@0.service, db-healthy for the gate, web-build for a build,
    else the unit name."""
    prefix = f"holos-{project}-"
    if unit.startswith(prefix) and unit.endswith(".service"):
        name = unit[len(prefix) : -len(".service")]
        service, _, index = name.partition("@")
        return instance_name(service, int(index)) if index.isdigit() else name
    return unit


def is_unit_of(unit: str, project: str) -> bool:
    """Whether `unit` is a name holosc gives a unit of `project`."""
    stem, dot, suffix = unit.rpartition(".")
    prefix = f"holos-{project}"
    if not dot or suffix not in ("service", "target", "timer") or not stem.startswith(prefix):
        return False
    rest = stem[len(prefix) :]
    if rest == "" and suffix == "target":
        return True
    return rest.startswith("-") and names.is_label(rest[1:].removesuffix("@"))


def gate_service(project: str, gate: str) -> str:
    """ "web" for holos-p-web-healthy.service: the inverse of gate_unit."""
    return gate[len(f"holos-{project}-") : -len("-healthy.service")]


def is_gate(unit: str) -> bool:
    return unit.endswith("-healthy.service")


# -- paths: give STATE/CONFIG/RUNTIME for the specifier form, a manager's dirs for the host's


def key(state: Root, project: str) -> Root:
    """The project's SSH key pair (KEY and KEY.pub), made on the host, never compiled."""
    return state / "ssh" / project / "id_ed25519"


def key_comment(project: str) -> str:
    """The comment of the project key (runtime-helpers/seed.py makes the same one)."""
    return f"holos-{project}"


def project_keys(state: Root, project: str) -> Root:
    return state / "ssh" / project


def instances(state: Root, project: str) -> Root:
    return state / "instances" / project


def instance_state(state: Root, project: str, instance: str) -> Root:
    """The instance's state directory: root disk, host key, known_hosts, console log."""
    return instances(state, project) / instance


def known_hosts(state: Root, project: str, instance: str) -> Root:
    return instance_state(state, project, instance) / "known_hosts"


def console_log(state: Root, project: str, instance: str) -> Root:
    return instance_state(state, project, instance) / "console.log"


def kept_console_log(state: Root, project: str, instance: str) -> Root:
    """The console log `down` keeps until the next `up` (what explains a force-quit)."""
    return instance_state(state, project, instance) / "console-before-down.log"


def root_disk(state: Root, project: str, instance: str) -> Root:
    return instance_state(state, project, instance) / "root.qcow2"


def volumes(state: Root, project: str) -> Root:
    return state / "volumes" / project


def volume_disk(state: Root, project: str, volume: str) -> Root:
    return volumes(state, project) / f"{volume}.qcow2"


def images(state: Root) -> Root:
    """The image cache."""
    return state / "images"


def artifacts(config: Root, project: str) -> Root:
    """Where `holosc install` puts the project's scripts and seeds."""
    return config / project


# What the compiler writes below <p>/, and so what install copies into artifacts().
PEERS_PREFIX = "hosts."  # hosts.<network>: its members' addresses and names (render/hosts.py)
PROJECT_FILES = ("volumes.sh",)  # <p>/NAME, beside the peer files
INSTANCE_FILES = ("launch.sh", "user-data", "meta-data", "network-config", "seed.iso")


BUILD_SUFFIX = ".build.json"


def is_project_file(name: str) -> bool:
    """Whether `name` is a file the compiler writes directly below <p>/."""
    if name in PROJECT_FILES or is_peers_name(name):
        return True
    return name.endswith(BUILD_SUFFIX) and names.is_label(name.removesuffix(BUILD_SUFFIX))


def peers_name(network: str) -> str:
    """The project file listing `network`'s members, below <p>/."""
    return f"{PEERS_PREFIX}{network}"


def is_peers_name(name: str) -> bool:
    return name.startswith(PEERS_PREFIX) and names.is_label(name.removeprefix(PEERS_PREFIX))


def peers_file(config: Root, project: str, network: str) -> Root:
    return artifacts(config, project) / peers_name(network)


def instance_runtime(runtime: Root, project: str, instance: str) -> Root:
    """The instance's runtime directory: QMP and serial sockets, pidfile, seed ISO."""
    return runtime / project / instance


def project_lock(runtime: Root, project: str) -> Root:
    """The flock one command at a time holds to change a project."""
    return runtime / f".{project}.lock"


def serial_socket(runtime: Root, project: str, instance: str) -> Root:
    return instance_runtime(runtime, project, instance) / "serial.sock"


def secrets(runtime: Root, project: str) -> Root:
    """Environment secrets for QEMU's fw_cfg (a tmpfs); launch.sh finds them at $run/../secrets."""
    return runtime / project / "secrets"


def below_root(path: PurePosixPath) -> str:
    """A specifier-form path without its %S/%E/%t: what StateDirectory= and
    RuntimeDirectory= take."""
    return str(path.relative_to(path.parts[0]))


def switch_sockets(runtime: Root, project: str) -> Root:
    """Where the project's switch binds its sockets: directly below %t/holos, under a
    name of fixed length, so that what QEMU sends to stays within the 107 bytes of a
    Unix socket address whatever the project's name (QEMU's -daemonize leaves it in /,
    so the path must be absolute)."""
    digest = hashlib.sha256(project.encode()).hexdigest()[:16]
    return runtime / f"s-{digest}"


def switch_members(runtime: Root, project: str) -> Root:
    """The switch's working directory, beside the instances' runtime directories: the
    names QEMU binds (`../<inst>/n-<id>.sock`) resolve from there."""
    return runtime / project / "switch"


def network_id(network: str) -> str:
    """A network's name in socket names: 8 hex digits of its SHA-256 (a name can be 63
    bytes; a socket address holds 107)."""
    return hashlib.sha256(network.encode()).hexdigest()[:8]


def network_socket(network: str) -> str:
    """The socket of `network` in the switch's directory and in each member's."""
    return f"n-{network_id(network)}.sock"


def qmp_socket(runtime: Root, project: str, instance: str) -> Root:
    return instance_runtime(runtime, project, instance) / "qmp.sock"


# Snapshots are internal qcow2 snapshots in the instance's disks (holosc/host/snapshots.py),
# tagged so that holosc's are told from anyone else's and each instance's from another's.
SNAPSHOT_PREFIX = "holos/"


def snapshot_tag(instance: str, name: str) -> str:
    """The qcow2 snapshot tag of snapshot `name` of `instance` (in each of its disks)."""
    return f"{SNAPSHOT_PREFIX}{instance}/{name}"
