"""From a Project to a Plan: instances, addresses, MACs, ports, unit names and paths.

Everything here is derived deterministically from the project (SHA-256 of names, never
randomness or the host), so the same holos.yaml compiles to the same bytes anywhere.
One function owns each derived name.

Addresses and host ports are handed out in instance order, except that an instance keeps
what the previous build gave it (its lock: committed next to the output, or installed):
scaling, adding or removing a service never moves another instance, so it never has to
restart (compose semantics).
"""

from __future__ import annotations

import dataclasses
import hashlib
import re
from collections.abc import Iterator, Mapping

from holosc.core import layout
from holosc.core.model import Condition, Project, Service

SUBNET = "10.10.0.0/24"
DEFAULT_NETWORK = "default"
FIRST_HOST = 2
LAST_HOST = 254
PORT_BLOCK_START = 20000
PORT_BLOCK_SIZE = 512
PORT_BLOCKS = 80  # 20000..60959


@dataclasses.dataclass(frozen=True, slots=True)
class Forward:
    host: int
    guest: int


@dataclasses.dataclass(frozen=True, slots=True)
class Allocation:
    """What a previous build gave an instance: its address, SSH port and forwards."""

    ip: str
    ssh_port: int
    forwards: tuple[Forward, ...] = ()


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
    networks: tuple[str, ...] = (DEFAULT_NETWORK,)

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
    refs = (s.image.ref for s in project.services if s.image.is_registry)
    return tuple(dict.fromkeys(refs))


def macs(project: str, service: str, index: int) -> tuple[str, str]:
    """(internal, user-mode) MACs: locally administered 52:54:00 / 52:54:01 prefixes."""
    g = _digest(f"{project}/{service}")
    tail = f"{g[0]:02x}:{g[1]:02x}:{index % 256:02x}"
    return f"52:54:00:{tail}", f"52:54:01:{tail}"


def port_block(project: str) -> int:
    """First port of the project's block of host ports for SSH and automatic forwards."""
    h = _digest(project)
    return PORT_BLOCK_START + (int.from_bytes(h[5:7], "big") % PORT_BLOCKS) * PORT_BLOCK_SIZE


def build_plan(project: Project, previous: Mapping[str, Allocation] | None = None) -> Plan:
    """Lay out every instance of `project` (services are already in dependency order).

    `previous` maps instance names to what the last build gave them; each keeps what is
    still valid (a lock is a file people edit and commit: anything else is handed out
    again). Without it, addresses and ports follow instance order.
    """
    static = {
        p.host + r
        for s in project.services
        for p in s.ports
        if p.host is not None
        for r in range(s.replicas)
    }
    names = [(s, r) for s in project.services for r in range(s.replicas)]
    kept = _kept(names, previous or {}, static)
    olds = [kept.get(layout.instance_name(s.name, r)) for s, r in names]
    ips = _hand_out(
        [_host_number(a.ip) if a else None for a in olds], range(FIRST_HOST, LAST_HOST + 1)
    )
    taken = static | {a.ssh_port for a in kept.values()}
    taken |= {f.host for a in kept.values() for f in a.forwards}
    free = _free_ports(port_block(project.name), taken)
    instances = []
    for (service, index), old, host in zip(names, olds, ips, strict=True):
        internal, user = macs(project.name, service.name, index)
        instances.append(
            Instance(
                service=service,
                index=index,
                ip=f"10.10.0.{host}",
                mac_internal=internal,
                mac_user=user,
                ssh_port=old.ssh_port if old else next(free),
                forwards=(),
            )
        )
    # Automatic host ports come after every SSH port, so adding a port never moves SSH.
    instances = [
        dataclasses.replace(i, forwards=_forwards(i, kept.get(i.name), free)) for i in instances
    ]
    return Plan(project, tuple(instances))


def _kept(
    names: list[tuple[Service, int]], previous: Mapping[str, Allocation], static: set[int]
) -> dict[str, Allocation]:
    """The previous allocations still valid: an address in the subnet and ports that no
    static port or earlier instance claims (first in instance order wins)."""
    kept: dict[str, Allocation] = {}
    ips: set[str] = set()
    ports: set[int] = set(static)
    for service, index in names:
        name = layout.instance_name(service.name, index)
        old = previous.get(name)
        if old is None or _host_number(old.ip) is None or old.ip in ips:
            continue
        automatic = {p.guest for p in service.ports if p.host is None}
        forwards = tuple(f for f in old.forwards if f.guest in automatic)
        mine = [old.ssh_port, *(f.host for f in forwards)]
        if len(set(mine)) != len(mine) or any(not 1024 <= p <= 65535 or p in ports for p in mine):
            continue
        kept[name] = Allocation(old.ip, old.ssh_port, forwards)
        ips.add(old.ip)
        ports.update(mine)
    return kept


def _host_number(ip: str) -> int | None:
    match = re.fullmatch(r"10\.10\.0\.([1-9][0-9]{0,2})", ip)
    number = int(match.group(1)) if match else 0
    return number if FIRST_HOST <= number <= LAST_HOST else None


def _hand_out(wanted: list[int | None], pool: range) -> list[int]:
    """Each wanted number as it is, each None the lowest number of `pool` nobody wants."""
    taken = set(wanted)
    free = (n for n in pool if n not in taken)
    return [n if n is not None else next(free) for n in wanted]


def _forwards(inst: Instance, old: Allocation | None, free: Iterator[int]) -> tuple[Forward, ...]:
    """Published ports: a fixed host port moves with the replica index; an automatic one
    keeps the host port it had for the same guest port, else takes the next free one."""
    had: dict[int, int | None] = {f.guest: f.host for f in old.forwards} if old else {}
    return tuple(
        Forward(p.host + inst.index, p.guest)
        if p.host is not None
        else Forward(had.pop(p.guest, None) or next(free), p.guest)
        for p in inst.service.ports
    )


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
