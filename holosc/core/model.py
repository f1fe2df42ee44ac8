"""The validated project: frozen, deeply immutable types that renderers trust.

Built once by `holosc.core.validate.checks.build_project`; nothing downstream re-checks inputs.
Durations are whole milliseconds and sizes whole bytes, so output never depends on
float formatting. Paths from holos.yaml stay as written (relative to the project
directory, or absolute); the launch scripts resolve them on the host at run time.
"""

from __future__ import annotations

import dataclasses
import enum
from typing import Any


class Condition(enum.StrEnum):
    STARTED = "service_started"
    HEALTHY = "service_healthy"
    COMPLETED = "service_completed_successfully"


class Restart(enum.StrEnum):
    """compose's `restart:`; None (not given) is holosc's default, systemd's on-abnormal."""

    NO = "no"
    ALWAYS = "always"
    ON_FAILURE = "on-failure"
    UNLESS_STOPPED = "unless-stopped"


class OsFamily(enum.StrEnum):
    SYSTEMD = "systemd"
    OPENRC = "openrc"


class MountKind(enum.StrEnum):
    BIND = "bind"
    VOLUME = "volume"


@dataclasses.dataclass(frozen=True, slots=True)
class Image:
    """A registry image (`name`, `tag`) or a local file (`path`)."""

    format: str
    os: OsFamily
    default_user: str | None = None
    path: str | None = None
    name: str | None = None
    tag: str | None = None

    @property
    def is_registry(self) -> bool:
        return self.name is not None

    @property
    def ref(self) -> str:
        """`name:tag` of a registry image (what the registry, tags and units name)."""
        assert self.is_registry, self.path
        return f"{self.name}:{self.tag}"


@dataclasses.dataclass(frozen=True, slots=True)
class Vm:
    vcpu: int = 1
    memory_mb: int = 512
    disk_size: int | None = None
    machine: str = "q35"
    cpu_model: str = "host"
    uefi: bool = False
    extra_args: tuple[str, ...] = ()
    kernel: str | None = None
    initrd: str | None = None
    cmdline: str | None = None
    # Memory the guest frees goes back to the host (virtio-balloon free page reporting);
    # off with PCI passthrough, where VFIO pins guest RAM and QEMU ignores the reports.
    free_page_reporting: bool = True
    ksm: bool = False  # QEMU's mem-merge: guest RAM open to the host's KSM (docs/density.md)


@dataclasses.dataclass(frozen=True, slots=True)
class Port:
    """`host` is None for an automatically chosen host port."""

    guest: int
    host: int | None
    protocol: str = "tcp"


@dataclasses.dataclass(frozen=True, slots=True)
class Mount:
    kind: MountKind
    source: str  # a volume name, or a host path as written
    target: str
    read_only: bool = False


@dataclasses.dataclass(frozen=True, slots=True)
class Device:
    pci: str  # normalised 0000:01:00.0
    rom_file: str | None = None


@dataclasses.dataclass(frozen=True, slots=True)
class Dependency:
    """`condition` None is the short form: healthy if the dependency has a healthcheck.
    `restart`: compose's `restart: true`, restart the dependent when the dependency restarts."""

    service: str
    condition: Condition | None = None
    required: bool = True
    restart: bool = False


@dataclasses.dataclass(frozen=True, slots=True)
class WriteFile:
    path: str
    content: str = ""
    permissions: str = "0644"
    owner: str = "root:root"


@dataclasses.dataclass(frozen=True, slots=True)
class CloudInit:
    user: str = "ubuntu"
    ssh_authorized_keys: tuple[str, ...] = ()
    packages: tuple[str, ...] = ()
    write_files: tuple[WriteFile, ...] = ()
    runcmd: tuple[str | tuple[str, ...], ...] = ()
    bootcmd: tuple[str | tuple[str, ...], ...] = ()


@dataclasses.dataclass(frozen=True, slots=True)
class Secret:
    """A top-level secret: a host file (as written) or a variable read by `holosc up`."""

    name: str
    file: str | None = None
    environment: str | None = None


@dataclasses.dataclass(frozen=True, slots=True)
class SecretUse:
    """A service's use of a secret: where it appears in the guest, and as whom."""

    source: str
    target: str  # absolute path in the guest
    mode: int = 0o400
    uid: int = 0
    gid: int = 0


@dataclasses.dataclass(frozen=True, slots=True)
class Healthcheck:
    """`test` is exec form; a compose string test is stored as ("sh", "-c", text)."""

    test: tuple[str, ...]
    interval_ms: int = 30_000
    timeout_ms: int = 30_000
    retries: int = 3
    start_period_ms: int = 0


@dataclasses.dataclass(frozen=True, slots=True)
class Provisioning:
    """A Dockerfile as first-boot provisioning: files to write and a script to run first
    (the cluster export's form: a cluster has no builder VM)."""

    files: tuple[WriteFile, ...]
    script: str


@dataclasses.dataclass(frozen=True, slots=True)
class BuildStep:
    """One RUN or COPY: a POSIX sh script the builder VM runs as root, `input` its stdin."""

    line: int
    instruction: str  # as written (continuations joined), for messages
    script: str
    input: bytes = b""


@dataclasses.dataclass(frozen=True, slots=True)
class Build:
    """What a Dockerfile turned into: the steps of its image (holos-bake), the ENV the
    image keeps, and the same as first-boot provisioning."""

    dockerfile: str  # as holos.yaml names it
    steps: tuple[BuildStep, ...]
    exports: str  # `export NAME=value` lines of the final ENV, and the WORKDIR made
    environment: tuple[str, ...]  # ENV names written to the image's /etc/environment
    first_boot: Provisioning


DEFAULT_NETWORK = "default"
HOST_GATEWAY = "host-gateway"  # extra_hosts: the host itself (compose's special value)


@dataclasses.dataclass(frozen=True, slots=True)
class Network:
    """A top-level network. `subnet` is an IPv4 network in CIDR form (None: holosc picks
    one); `external` names an existing host bridge (system scope, tap devices)."""

    name: str
    subnet: str | None = None
    internal: bool = False
    external: str | None = None


@dataclasses.dataclass(frozen=True, slots=True)
class Attachment:
    """A service's membership in one network (compose's service-level networks:)."""

    network: str
    aliases: tuple[str, ...] = ()
    ipv4_address: str | None = None


@dataclasses.dataclass(frozen=True, slots=True)
class Service:
    name: str
    image: Image
    replicas: int = 1
    vm: Vm = Vm()
    ports: tuple[Port, ...] = ()
    mounts: tuple[Mount, ...] = ()
    devices: tuple[Device, ...] = ()
    depends_on: tuple[Dependency, ...] = ()
    cloud_init: CloudInit = CloudInit()
    stop_grace_ms: int = 30_000
    healthcheck: Healthcheck | None = None
    build: Build | None = None
    restart: Restart | None = None
    environment: tuple[tuple[str, str], ...] = ()  # for SSH sessions and login shells
    secrets: tuple[SecretUse, ...] = ()
    networks: tuple[Attachment, ...] = (Attachment(DEFAULT_NETWORK),)  # sorted by name
    extra_hosts: tuple[tuple[str, str], ...] = ()  # (name, IPv4/IPv6 address or host-gateway)

    @property
    def host_gateway(self) -> bool:
        """Whether the service asked for the host (extra_hosts host-gateway)."""
        return any(address == HOST_GATEWAY for _, address in self.extra_hosts)

    @property
    def network_names(self) -> tuple[str, ...]:
        return tuple(a.network for a in self.networks)

    @property
    def binds(self) -> tuple[Mount, ...]:
        """Host directories shared into the guest, in declaration order."""
        return tuple(m for m in self.mounts if m.kind is MountKind.BIND)

    @property
    def named_volumes(self) -> tuple[Mount, ...]:
        return tuple(m for m in self.mounts if m.kind is MountKind.VOLUME)


@dataclasses.dataclass(frozen=True, slots=True)
class Volume:
    name: str
    size: int = 10 * 1024**3


@dataclasses.dataclass(frozen=True, slots=True)
class Project:
    """A whole holos.yaml. `services` are in dependency order (dependencies first)."""

    name: str
    services: tuple[Service, ...]
    volumes: tuple[Volume, ...] = ()
    profiles: tuple[str, ...] = ()  # the active profiles the services were selected by
    secrets: tuple[Secret, ...] = ()
    networks: tuple[Network, ...] = (Network(DEFAULT_NETWORK),)  # those some service joins

    def network(self, name: str) -> Network:
        return next(n for n in self.networks if n.name == name)

    def secret(self, name: str) -> Secret:
        return next(s for s in self.secrets if s.name == name)

    @property
    def used_volumes(self) -> frozenset[str]:
        """Names of the top-level volumes some service mounts."""
        return frozenset(m.source for s in self.services for m in s.named_volumes)

    def service(self, name: str) -> Service:
        for service in self.services:
            if service.name == name:
                return service
        raise KeyError(name)


def to_dict(value: Any) -> Any:
    """A JSON-ready view of a model value (enums as strings, tuples as lists)."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: to_dict(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, tuple | list):
        return [to_dict(v) for v in value]
    return value
