"""compose `networks:` and `extra_hosts:`: top-level networks, each service's memberships,
and what spans them (unknown networks, static addresses, overlapping subnets).

Semantics follow the compose specification; the VM-specific differences are listed in
docs/format.md ("Networks"). A subnet holosc picks itself is the plan's business
(core/plan.py), not checked here.
"""

from __future__ import annotations

import difflib
import ipaddress
import re
from typing import Any

from holosc.core.document import JsonPath
from holosc.core.model import DEFAULT_NETWORK, HOST_GATEWAY, Attachment, Network, Service
from holosc.core.plan import DEFAULT_SUBNET
from holosc.core.validate.checker import NAME, Checker

# The NAT NIC's network (QEMU's slirp); a project network there would shadow it.
NAT_SUBNET = ipaddress.IPv4Network("10.0.2.0/24")
MAX_PREFIX = 29  # room for a few instances beside network, gateway and broadcast
HOSTNAME = re.compile(
    r"\A[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*\Z"
)
MAX_NETWORKS_PER_SERVICE = 16  # NICs; fw_cfg peer files are numbered 00..15


def top_level(check: Checker, raw: Any) -> dict[str, Network]:
    """The declared networks (default among them, declared or not)."""
    found = {DEFAULT_NETWORK: Network(DEFAULT_NETWORK)}
    for name, spec in (raw if isinstance(raw, dict) else {}).items():
        if not isinstance(name, str) or not NAME.fullmatch(name):
            continue  # the schema reports it
        found[name] = _network(check, ("networks", name), name, spec or {})
    return found


def _network(check: Checker, at: JsonPath, name: str, spec: Any) -> Network:
    if not isinstance(spec, dict):
        return Network(name)
    internal = spec.get("internal") is True
    subnet = None
    config = (spec.get("ipam") or {}).get("config") if isinstance(spec.get("ipam"), dict) else None
    if isinstance(config, list) and config and isinstance(config[0], dict):
        value = config[0].get("subnet")
        if isinstance(value, str):
            subnet = _subnet(check, (*at, "ipam", "config", 0, "subnet"), value)
    external = None
    if spec.get("external") is True:
        bridge = spec.get("name", name)
        if not isinstance(bridge, str) or not re.fullmatch(r"[A-Za-z0-9_.-]{1,15}", bridge):
            check.error(
                (*at, "name"),
                f"'{bridge}' is not a Linux interface name",
                "up to 15 letters, digits, '_', '.' and '-'",
            )
        if internal or subnet is not None:
            check.error(
                (*at, "external"),
                "an external network is the host's bridge: internal: and ipam: do not apply",
            )
        external = bridge if isinstance(bridge, str) else name
    elif "name" in spec:
        check.error((*at, "name"), "name: names an existing host bridge: it needs external: true")
    return Network(name, subnet, internal, external)


def _subnet(check: Checker, where: JsonPath, value: str) -> str | None:
    try:
        net = ipaddress.IPv4Network(value, strict=True)
    except ValueError as exc:
        check.error(
            where, f"'{value}' is not an IPv4 subnet ({exc})", "CIDR form, e.g. 10.20.0.0/24"
        )
        return None
    if net.prefixlen > MAX_PREFIX or net.prefixlen < 8:
        check.error(where, f"subnet {net} must be between /8 and /{MAX_PREFIX}")
        return None
    if net.overlaps(NAT_SUBNET):
        check.error(
            where,
            f"subnet {net} overlaps {NAT_SUBNET}, the network of every guest's NAT interface",
        )
        return None
    return str(net)


def attachments(check: Checker, at: JsonPath, raw: Any) -> tuple[Attachment, ...]:
    """A service's networks, sorted by name (the order of its NICs); `default` when it
    names none, as in compose."""
    if raw is None:
        return (Attachment(DEFAULT_NETWORK),)
    where = (*at, "networks")
    items: list[tuple[JsonPath, str, Any]] = []
    if isinstance(raw, list):
        items = [((*where, i), n, None) for i, n in enumerate(raw) if isinstance(n, str)]
    elif isinstance(raw, dict):
        items = [((*where, n), n, spec) for n, spec in raw.items() if isinstance(n, str)]
    found: dict[str, Attachment] = {}
    for path, name, spec in items:
        if name in found:
            check.error(path, f"network '{name}' is listed twice")
            continue
        aliases: list[str] = []
        address = None
        if isinstance(spec, dict):
            for i, alias in enumerate(spec.get("aliases") or []):
                if isinstance(alias, str) and not HOSTNAME.fullmatch(alias):
                    check.error((*path, "aliases", i), f"'{alias}' is not a host name")
                elif isinstance(alias, str):
                    aliases.append(alias)
            if isinstance(spec.get("ipv4_address"), str):
                address = spec["ipv4_address"]
                try:
                    ipaddress.IPv4Address(address)
                except ValueError:
                    check.error((*path, "ipv4_address"), f"'{address}' is not an IPv4 address")
                    address = None
        found[name] = Attachment(name, tuple(aliases), address)
    if len(found) > MAX_NETWORKS_PER_SERVICE:
        check.error(where, f"{len(found)} networks; a VM has at most {MAX_NETWORKS_PER_SERVICE}")
    return tuple(found[n] for n in sorted(found))


def extra_hosts(check: Checker, at: JsonPath, raw: Any) -> tuple[tuple[str, str], ...]:
    """compose's extra_hosts: `name:IP`, `name=IP` (IPv6 may be bracketed), or a mapping."""
    where = (*at, "extra_hosts")
    entries: list[tuple[JsonPath, str, str]] = []
    if isinstance(raw, list):
        for i, item in enumerate(raw):
            if not isinstance(item, str):
                continue
            sep = "=" if "=" in item else ":"
            name, found, address = item.partition(sep)
            if not found:
                check.error((*where, i), f"'{item}' is not name:IP or name=IP")
                continue
            entries.append(((*where, i), name, address))
    elif isinstance(raw, dict):
        entries = [((*where, n), n, a) for n, a in raw.items() if isinstance(a, str)]
    result = []
    for path, name, address in entries:
        address = address.strip().removeprefix("[").removesuffix("]")
        if not HOSTNAME.fullmatch(name):
            check.error(path, f"'{name}' is not a host name")
            continue
        if address != HOST_GATEWAY:
            try:
                address = str(ipaddress.ip_address(address))
            except ValueError:
                check.error(
                    path, f"'{address}' is not an IP address", f"or {HOST_GATEWAY}, the host"
                )
                continue
        result.append((name, address))
    return tuple(result)


def check_project(
    check: Checker, services: list[Service], networks: dict[str, Network]
) -> tuple[Network, ...]:
    """Cross-service checks; returns the networks some service joins, by name."""
    used: set[str] = set()
    addresses: dict[tuple[str, str], str] = {}
    for service in services:
        for attachment in service.networks:
            path = _attachment_path(check, service.name, attachment.network)
            network = networks.get(attachment.network)
            if network is None:
                close = difflib.get_close_matches(attachment.network, sorted(networks), n=1)
                check.error(
                    path,
                    f"unknown network '{attachment.network}'",
                    f"did you mean '{close[0]}'?"
                    if close
                    else "declare it under the top-level networks:",
                )
                continue
            used.add(network.name)
            _check_address(check, service, attachment, network, addresses)
    joined = tuple(networks[n] for n in sorted(used))
    _check_overlaps(check, list(joined))
    check_room(check, services, joined)
    return joined


def _attachment_path(check: Checker, service: str, network: str) -> JsonPath:
    """Where a service names `network`: its list item or mapping key."""
    raw = check.doc.data["services"][service].get("networks")
    if isinstance(raw, list):
        return ("services", service, "networks", raw.index(network))
    if isinstance(raw, dict):
        return ("services", service, "networks", network)
    return ("services", service)


def _check_address(
    check: Checker,
    service: Service,
    attachment: Attachment,
    network: Network,
    taken: dict[tuple[str, str], str],
) -> None:
    if attachment.ipv4_address is None:
        return
    path = (*_attachment_path(check, service.name, network.name), "ipv4_address")
    if network.external is not None:
        check.error(
            path, f"network '{network.name}' is the host's bridge: its DHCP gives addresses"
        )
        return
    subnet = subnet_of(network)
    if subnet is None:
        check.error(
            path,
            f"network '{network.name}' has no subnet of its own",
            "give it ipam: {config: [{subnet: ...}]}, as compose requires for ipv4_address",
        )
        return
    address = ipaddress.IPv4Address(attachment.ipv4_address)
    if address not in subnet or address in (subnet.network_address, subnet.broadcast_address):
        check.error(path, f"{address} is not a host address of {network.name}'s subnet {subnet}")
        return
    key = (network.name, str(address))
    if service.replicas > 1:
        check.error(
            path,
            f"{address} would be given to each of the {service.replicas} replicas",
            "a fixed address suits one instance: drop ipv4_address or set replicas: 1",
        )
    elif key in taken:
        check.error(path, f"{address} on {network.name} is taken by {taken[key]} too")
    taken[key] = service.name


def subnet_of(network: Network) -> ipaddress.IPv4Network | None:
    """The subnet a network is known to have before planning: its own, or default's."""
    if network.subnet is not None:
        return ipaddress.IPv4Network(network.subnet)
    return DEFAULT_SUBNET if network.name == DEFAULT_NETWORK else None


def _check_overlaps(check: Checker, networks: list[Network]) -> None:
    seen: list[tuple[Network, ipaddress.IPv4Network]] = []
    for network in networks:
        subnet = subnet_of(network)
        if subnet is None or network.external is not None:
            continue
        for other, other_subnet in seen:
            if subnet.overlaps(other_subnet):
                # Point at a subnet someone wrote (default's own needs no declaration).
                culprit = network if network.subnet is not None else other
                check.error(
                    ("networks", culprit.name, "ipam", "config", 0, "subnet"),
                    f"subnet {subnet} of network '{network.name}' overlaps "
                    f"{other_subnet} of '{other.name}'",
                )
        seen.append((network, subnet))


def check_room(check: Checker, services: list[Service], networks: tuple[Network, ...]) -> None:
    """Each network with a known subnet has an address for every instance on it."""
    for network in networks:
        subnet = subnet_of(network)
        if subnet is None or network.external is not None:
            continue
        count = sum(s.replicas for s in services if network.name in s.network_names)
        room = subnet.num_addresses - 3  # network, gateway (.1, as compose) and broadcast
        if count > room:
            at: JsonPath = ("networks", network.name)
            check.error(
                (*at, "ipam", "config", 0, "subnet") if network.subnet else ("services",),
                f"network '{network.name}' ({subnet}) has room for {room} instances, not {count}",
            )
