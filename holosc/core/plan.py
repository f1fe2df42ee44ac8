"""From a Project to a Plan: instances, addresses, MACs, ports, unit names and paths.

Everything here is derived deterministically from the project (SHA-256 of names, never
randomness or the host), so the same holos.yaml compiles to the same bytes anywhere.
One function owns each derived name.
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Iterator

from holosc.core import layout
from holosc.core.model import Condition, Project, Service

SUBNET = "10.10.0.0/24"
FIRST_HOST = 2
PORT_BLOCK_START = 20000
PORT_BLOCK_SIZE = 512
PORT_BLOCKS = 80  # 20000..60959


@dataclasses.dataclass(frozen=True, slots=True)
class Forward:
    host: int
    guest: int


@dataclasses.dataclass(frozen=True, slots=True)
class Instance:
    service: Service
    index: int
    ip: str
    mac_internal: str
    mac_user: str
    ssh_port: int
    forwards: tuple[Forward, ...]

    @property
    def name(self) -> str:
        return layout.instance_name(self.service.name, self.index)


@dataclasses.dataclass(frozen=True, slots=True)
class Plan:
    project: Project
    instances: tuple[Instance, ...]
    mcast_group: str
    mcast_port: int

    def of(self, service: Service) -> tuple[Instance, ...]:
        return tuple(i for i in self.instances if i.service.name == service.name)

    def hosts(self) -> tuple[tuple[str, tuple[str, ...]], ...]:
        """(ip, names) for /etc/hosts: `svc` names replica 0, `svc-i` each replica."""
        return tuple(
            (i.ip, (i.service.name, i.name) if i.index == 0 else (i.name,)) for i in self.instances
        )


def _digest(text: str) -> bytes:
    return hashlib.sha256(text.encode()).digest()


def registry_images(project: Project) -> tuple[str, ...]:
    """`name:tag` of every registry image the services use, first use first."""
    refs = (f"{s.image.name}:{s.image.tag}" for s in project.services if s.image.is_registry)
    return tuple(dict.fromkeys(refs))


def multicast(project: str) -> tuple[str, int]:
    """Per-project L2 segment: group 239.a.b.c and a port in 10000..64999."""
    h = _digest(project)
    return f"239.{h[0]}.{h[1]}.{h[2]}", 10000 + ((h[3] << 8) | h[4]) % 55000


def macs(project: str, service: str, index: int) -> tuple[str, str]:
    """(internal, user-mode) MACs: locally administered 52:54:00 / 52:54:01 prefixes."""
    g = _digest(f"{project}/{service}")
    tail = f"{g[0]:02x}:{g[1]:02x}:{index % 256:02x}"
    return f"52:54:00:{tail}", f"52:54:01:{tail}"


def port_block(project: str) -> int:
    """First port of the project's block of host ports for SSH and automatic forwards."""
    h = _digest(project)
    return PORT_BLOCK_START + (int.from_bytes(h[5:7], "big") % PORT_BLOCKS) * PORT_BLOCK_SIZE


def build_plan(project: Project) -> Plan:
    """Lay out every instance of `project` (services are already in dependency order)."""
    static = {
        p.host + r
        for s in project.services
        for p in s.ports
        if p.host is not None
        for r in range(s.replicas)
    }
    free = _free_ports(port_block(project.name), static)
    instances = []
    for ordinal, (service, index) in enumerate(
        (s, r) for s in project.services for r in range(s.replicas)
    ):
        internal, user = macs(project.name, service.name, index)
        instances.append(
            Instance(
                service=service,
                index=index,
                ip=f"10.10.0.{FIRST_HOST + ordinal}",
                mac_internal=internal,
                mac_user=user,
                ssh_port=next(free),
                forwards=(),
            )
        )
    # Automatic host ports come after every SSH port, so adding a port never moves SSH.
    instances = [
        dataclasses.replace(
            i,
            forwards=tuple(
                Forward(p.host + i.index if p.host is not None else next(free), p.guest)
                for p in i.service.ports
            ),
        )
        for i in instances
    ]
    group, port = multicast(project.name)
    return Plan(project, tuple(instances), group, port)


def _free_ports(start: int, taken: set[int]) -> Iterator[int]:
    port = start
    while True:
        if port not in taken:
            yield port
        port += 1


def waits_for_health(dependency: Service, condition: Condition | None) -> bool:
    """Whether a dependent waits for `dependency`'s health gate rather than its instances.

    As the holos README says, a dependency with a healthcheck blocks its dependents until
    it is healthy; compose's long form can ask for service_started explicitly.
    """
    return dependency.healthcheck is not None and condition in (None, Condition.HEALTHY)
