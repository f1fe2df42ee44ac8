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
import ipaddress
from collections.abc import Iterator, Mapping

from holosc.core import layout
from holosc.core.model import DEFAULT_NETWORK, Condition, Project, Service

DEFAULT_SUBNET = ipaddress.IPv4Network("10.10.0.0/24")
AUTO_POOL = ipaddress.IPv4Network("10.10.0.0/16")  # subnets holosc picks: 10.10.K.0/24

FIRST_HOST = 2  # .1 is the gateway's in compose; no instance takes it
# The MTU of a project network's NICs: jumbo frames, so fewer frames pass the switch (its
# cost is per frame). Not 64 KiB, which QEMU's dgram backend would carry: the switch's
# socket may hold 208 KiB unread (net.core.wmem_max, the most an unprivileged process
# gets), a few 64 KiB frames; a receiver whose queue is full loses the frame.
NETWORK_MTU = 9000
PORT_BLOCK_START = 20000
PORT_BLOCK_SIZE = 512
PORT_BLOCKS = 80  # 20000..60959


@dataclasses.dataclass(frozen=True, slots=True)
class Forward:
    host: int
    guest: int


@dataclasses.dataclass(frozen=True, slots=True)
class Allocation:
    """What a previous build gave an instance: an address per network, its SSH port and
    forwards."""

    ips: Mapping[str, str]
    ssh_port: int
    forwards: tuple[Forward, ...] = ()


@dataclasses.dataclass(frozen=True, slots=True)
class PlannedNetwork:
    """A network as the instances see it. `subnet` is "" on an external network (the
    host's bridge: its DHCP gives the addresses)."""

    name: str
    subnet: str
    internal: bool = False
    external: str | None = None

    @property
    def ident(self) -> str:
        return layout.network_id(self.name)

    @property
    def prefix(self) -> int:
        return ipaddress.IPv4Network(self.subnet).prefixlen if self.subnet else 0


@dataclasses.dataclass(frozen=True, slots=True)
class Nic:
    """One NIC of an instance on a project network; `ip` is "" on an external one."""

    network: str
    ip: str
    mac: str


@dataclasses.dataclass(frozen=True, slots=True)
class Instance:
    service: Service
    index: int
    nics: tuple[Nic, ...]
    mac_user: str
    ssh_port: int
    forwards: tuple[Forward, ...]

    @property
    def name(self) -> str:
        return layout.instance_name(self.service.name, self.index)

    @property
    def ip(self) -> str:
        """The address on its first network ("" with none): orders instances in the lock."""
        return next((n.ip for n in self.nics if n.ip), "")

    def nic(self, network: str) -> Nic | None:
        return next((n for n in self.nics if n.network == network), None)


@dataclasses.dataclass(frozen=True, slots=True)
class Plan:
    project: Project
    instances: tuple[Instance, ...]
    networks: tuple[PlannedNetwork, ...] = ()

    def of(self, service: Service) -> tuple[Instance, ...]:
        return tuple(i for i in self.instances if i.service.name == service.name)

    def network(self, name: str) -> PlannedNetwork:
        return next(n for n in self.networks if n.name == name)

    def hosts(self, network: str) -> tuple[tuple[str, tuple[str, ...]], ...]:
        """(ip, names) for /etc/hosts of the guests on `network`: `svc` and its aliases
        there name replica 0, `svc-i` each replica."""
        lines = []
        for inst in self.instances:
            nic = inst.nic(network)
            if nic is None or not nic.ip:
                continue
            names: tuple[str, ...] = (inst.name,)
            if inst.index == 0:
                attachment = next(a for a in inst.service.networks if a.network == network)
                names = (inst.service.name, inst.name, *attachment.aliases)
            lines.append((nic.ip, names))
        return tuple(lines)


def _digest(text: str) -> bytes:
    return hashlib.sha256(text.encode()).digest()


def registry_images(project: Project) -> tuple[str, ...]:
    """`name:tag` of every registry image the services use, first use first."""
    refs = (s.image.ref for s in project.services if s.image.is_registry)
    return tuple(dict.fromkeys(refs))


def macs(project: str, service: str, index: int) -> tuple[str, str]:
    """(default network, NAT) MACs: locally administered 52:54:00 / 52:54:01 prefixes."""
    g = _digest(f"{project}/{service}")
    tail = f"{g[0]:02x}:{g[1]:02x}:{index % 256:02x}"
    return f"52:54:00:{tail}", f"52:54:01:{tail}"


def network_mac(project: str, service: str, index: int, network: str) -> str:
    """The MAC of an instance's NIC on `network` (52:54:02 prefix, default's as before)."""
    if network == DEFAULT_NETWORK:
        return macs(project, service, index)[0]
    g = _digest(f"{project}/{service}/{network}")
    return f"52:54:02:{g[0]:02x}:{g[1]:02x}:{index % 256:02x}"


def port_block(project: str) -> int:
    """First port of the project's block of host ports for SSH and automatic forwards."""
    h = _digest(project)
    return PORT_BLOCK_START + (int.from_bytes(h[5:7], "big") % PORT_BLOCKS) * PORT_BLOCK_SIZE


def build_plan(
    project: Project,
    previous: Mapping[str, Allocation] | None = None,
    subnets: Mapping[str, str] | None = None,
) -> Plan:
    """Lay out every instance of `project` (services are already in dependency order).

    `previous` maps instance names to what the last build gave them and `subnets` the
    networks to the subnets holosc picked then; each keeps what is still valid (a lock
    is a file people edit and commit: anything else is handed out again). Without them,
    addresses and ports follow instance order, and picked subnets network order.
    """
    previous = previous or {}
    static = {
        p.host + r
        for s in project.services
        for p in s.ports
        if p.host is not None
        for r in range(s.replicas)
    }
    names = [(s, r) for s in project.services for r in range(s.replicas)]
    kept = _kept(names, previous, static)
    networks = _networks(project, subnets or {})
    addresses = {n.name: _addresses(n, names, previous) for n in networks if n.external is None}
    taken = static | {a.ssh_port for a in kept.values()}
    taken |= {f.host for a in kept.values() for f in a.forwards}
    free = _free_ports(port_block(project.name), taken)
    instances = []
    for service, index in names:
        name = layout.instance_name(service.name, index)
        old = kept.get(name)
        nics = tuple(
            Nic(
                network,
                addresses[network].get(name, "") if network in addresses else "",
                network_mac(project.name, service.name, index, network),
            )
            for network in service.network_names
        )
        instances.append(
            Instance(
                service=service,
                index=index,
                nics=nics,
                mac_user=macs(project.name, service.name, index)[1],
                ssh_port=old.ssh_port if old else next(free),
                forwards=(),
            )
        )
    # Automatic host ports come after every SSH port, so adding a port never moves SSH.
    instances = [
        dataclasses.replace(i, forwards=_forwards(i, kept.get(i.name), free)) for i in instances
    ]
    return Plan(project, tuple(instances), networks)


def _networks(project: Project, picked: Mapping[str, str]) -> tuple[PlannedNetwork, ...]:
    """Every network a service joins, with its subnet: its own (ipam), default's
    10.10.0.0/24, or a /24 of 10.10.0.0/16 that no other network overlaps (the one the
    previous build picked while it still fits)."""
    fixed = {n.name: ipaddress.IPv4Network(n.subnet) for n in project.networks if n.subnet}
    if DEFAULT_NETWORK not in fixed:
        fixed[DEFAULT_NETWORK] = DEFAULT_SUBNET
    taken = list(fixed.values())
    chosen = dict(fixed)
    auto = [n for n in project.networks if n.name not in fixed and n.external is None]
    for network in auto:  # first those whose previous subnet is still free
        old = _parse_subnet(picked.get(network.name))
        fits = old is not None and old.subnet_of(AUTO_POOL) and old.prefixlen == 24
        if old is not None and fits and not any(old.overlaps(t) for t in taken):
            chosen[network.name] = old
            taken.append(old)
    for network in auto:
        if network.name not in chosen:
            free = (
                s for s in AUTO_POOL.subnets(new_prefix=24) if not any(s.overlaps(t) for t in taken)
            )
            chosen[network.name] = next(free)
            taken.append(chosen[network.name])
    return tuple(
        PlannedNetwork(
            n.name, str(chosen[n.name]) if n.external is None else "", n.internal, n.external
        )
        for n in project.networks
    )


def _parse_subnet(text: object) -> ipaddress.IPv4Network | None:
    try:
        return ipaddress.IPv4Network(text) if isinstance(text, str) else None
    except ValueError:
        return None


def _addresses(
    network: PlannedNetwork, names: list[tuple[Service, int]], previous: Mapping[str, Allocation]
) -> dict[str, str]:
    """Instance name -> address on `network`: ipv4_address as given, else the previous
    build's while it is a free host address of the subnet, else the lowest free one."""
    subnet = ipaddress.IPv4Network(network.subnet)
    members = [(s, r) for s, r in names if network.name in s.network_names]
    fixed = {}
    for service, index in members:
        attachment = next(a for a in service.networks if a.network == network.name)
        if attachment.ipv4_address is not None:
            fixed[layout.instance_name(service.name, index)] = attachment.ipv4_address
    taken = set(fixed.values())
    result = dict(fixed)
    for service, index in members:
        name = layout.instance_name(service.name, index)
        old = previous.get(name)
        ip = old.ips.get(network.name) if old else None
        if name in result or ip is None or ip in taken or not _is_host(subnet, ip):
            continue
        result[name] = ip
        taken.add(ip)
    first = int(subnet.network_address) + FIRST_HOST
    pool = (
        str(ipaddress.IPv4Address(n))
        for n in range(first, int(subnet.broadcast_address))
        if str(ipaddress.IPv4Address(n)) not in taken
    )
    for service, index in members:
        name = layout.instance_name(service.name, index)
        if name not in result:
            result[name] = next(pool)
    return result


def _is_host(subnet: ipaddress.IPv4Network, ip: str) -> bool:
    """Whether `ip` (from a lock someone may have edited) is one holosc hands out there."""
    try:
        address = ipaddress.IPv4Address(ip)
    except ValueError:
        return False
    first = int(subnet.network_address) + FIRST_HOST
    return address in subnet and first <= int(address) < int(subnet.broadcast_address)


def _kept(
    names: list[tuple[Service, int]], previous: Mapping[str, Allocation], static: set[int]
) -> dict[str, Allocation]:
    """The previous port allocations still valid: ports that no static port or earlier
    instance claims (first in instance order wins)."""
    kept: dict[str, Allocation] = {}
    ports: set[int] = set(static)
    for service, index in names:
        name = layout.instance_name(service.name, index)
        old = previous.get(name)
        if old is None:
            continue
        automatic = {p.guest for p in service.ports if p.host is None}
        forwards = tuple(f for f in old.forwards if f.guest in automatic)
        mine = [old.ssh_port, *(f.host for f in forwards)]
        if len(set(mine)) != len(mine) or any(not 1024 <= p <= 65535 or p in ports for p in mine):
            continue
        kept[name] = Allocation(old.ips, old.ssh_port, forwards)
        ports.update(mine)
    return kept


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
