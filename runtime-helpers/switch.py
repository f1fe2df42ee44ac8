"""holos-switch: the Ethernet switch of a project's networks, and its guests' NAT filter.

Usage::

    holos-switch --sockets DIR --members DIR [--network NAME=ID ...] [--project P]

One process per project, run by ``holos-<p>-switch.service``. Every instance NIC is a
QEMU ``-netdev dgram`` over Unix datagram sockets: QEMU binds its own end in the
instance's runtime directory (mode 0700) and sends each frame to a socket of this
switch in ``--sockets`` (0700 too), so only the manager's user can join, send to or
read a network (docs/units.md, "Networks"). Datagrams need no connection: a VM or the
switch that restarts is reached again at the same path with no action from anyone.

- ``<sockets>/n-ID.sock``, one per ``--network``: a learning switch. Members are the
  sockets that sent to it, plus, when it starts and at most once a second while it
  floods, the sockets ``../*/n-ID.sock`` seen from ``--members`` (a directory beside
  the instances' runtime directories, where their relative socket names resolve).
  Unicast goes to the port that last sent from the destination MAC; broadcast,
  multicast and unknown destinations are flooded to every other member.
- ``<sockets>/nat.sock``: each instance's NAT NIC (``../<inst>/nat.sock``, or
  ``nat-host.sock`` for a service that asked for the host's gateway) is wired through
  here to its own QEMU user-mode network (``../<inst>/slirp.sock``, on a QEMU hub with
  the slirp netdev). Frames from the guest pass only if `nat_allows` them: slirp maps
  its own network's addresses (10.0.2.0/24, the host alias 10.0.2.2 among them) and
  127.0.0.0/8 to the host's loopback, which guests must not reach.

Frames are dropped, never queued, when a receiver is full or gone (a switch's
semantics; TCP recovers). Exit codes: 0 on SIGTERM, 2 usage, 1 when a socket cannot be
bound. Standard library only; it never imports the compiler.
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import glob
import logging
import os
import selectors
import signal
import socket
import sys
import time
from collections.abc import Sequence

log = logging.getLogger("holos-switch")

MAX_FRAME = 65536
RESCAN_S = 1.0
# slirp's defaults (QEMU -netdev user): its network, the host alias and the DNS proxy.
SLIRP_NET = bytes((10, 0, 2))
SLIRP_HOST = bytes((10, 0, 2, 2))
SLIRP_DNS = bytes((10, 0, 2, 3))
BROADCAST = bytes((255, 255, 255, 255))
ETH_ARP = b"\x08\x06"
ETH_IPV4 = b"\x08\x00"
TCP, UDP = 6, 17
TCP_SYN, TCP_ACK = 0x02, 0x10
NAT_SOCKET = "nat.sock"  # the switch's, in --sockets
NAT_GUEST = "nat.sock"  # an instance's guest NIC, in its runtime directory
NAT_GUEST_HOST = "nat-host.sock"  # a service with extra_hosts host-gateway
NAT_SLIRP = "slirp.sock"
GONE = (errno.ENOENT, errno.ECONNREFUSED, errno.ENOTDIR)


def nat_allows(frame: bytes, host_gateway: bool) -> bool:
    """Whether a guest's frame may reach its slirp: ARP, and IPv4 to anywhere but the
    host's loopback.

    slirp connects what a guest opens towards 127.0.0.0/8, 0.0.0.0/8 or any address of
    its own network but its DNS proxy to the host's loopback (measured: a guest that
    routed 127.0.0.1 through eth0 reached a host listener on 127.0.0.1). So towards its
    network only these pass: DHCP, DNS to 10.0.2.3, TCP segments that open nothing (SYN
    without ACK is what makes slirp connect; the rest belongs to connections slirp made
    itself, the host's port forwards, which reach the guest from 10.0.2.2), and anything
    to 10.0.2.2 when `host_gateway`. Other ethertypes (IPv6: slirp runs with ipv6=off),
    fragments towards slirp's network and malformed IPv4 are dropped."""
    kind = frame[12:14]
    if kind == ETH_ARP:
        return True
    if kind != ETH_IPV4 or len(frame) < 34:
        return False
    ip = memoryview(frame)[14:]
    header = (ip[0] & 0x0F) * 4
    if ip[0] >> 4 != 4 or header < 20 or len(ip) < header:
        return False
    dst = bytes(ip[16:20])
    if dst[0] in (0, 127):
        return False
    if dst[:3] != SLIRP_NET and dst != BROADCAST:
        return True
    if host_gateway and dst == SLIRP_HOST:
        return True
    # A fragment carries no ports (or could overwrite them on reassembly): refused here.
    fragment = int.from_bytes(ip[6:8], "big") & 0x3FFF
    if fragment or len(ip) < header + 14:
        return False
    protocol, port = ip[9], int.from_bytes(ip[header + 2 : header + 4], "big")
    if dst == SLIRP_DNS and protocol in (TCP, UDP) and port == 53:
        return True
    if protocol == TCP and dst != BROADCAST:
        flags = ip[header + 13]
        return not (flags & TCP_SYN and not flags & TCP_ACK)
    return protocol == UDP and port == 67 and dst in (SLIRP_HOST, BROADCAST)


class Network:
    """One learning switch: members by socket name, MACs to the member that sent last."""

    def __init__(self, name: str, ident: str, sock: socket.socket) -> None:
        self.name = name
        self.socket_name = f"n-{ident}.sock"
        self.pattern = f"../*/{self.socket_name}"
        self.sock = sock
        self.members: dict[str, None] = {}  # insertion-ordered set
        self.macs: dict[bytes, str] = {}
        self.scanned = 0.0
        self.dropped = 0

    def rescan(self) -> None:
        self.scanned = time.monotonic()
        for path in sorted(glob.glob(self.pattern)):
            self.join(path)

    def join(self, member: str) -> None:
        if member not in self.members:
            self.members[member] = None
            log.info("%s: %s joined", self.name, member.split("/")[1])

    def leave(self, member: str) -> None:
        if self.members.pop(member, "gone") is None:
            log.info("%s: %s left", self.name, member.split("/")[1])
        for mac in [m for m, p in self.macs.items() if p == member]:
            del self.macs[mac]

    def forward(self, frame: bytes, source: str) -> None:
        if source not in self.members:
            # Only this network's NICs: a socket of another network never joins it.
            if not is_member_name(source) or not source.endswith(f"/{self.socket_name}"):
                return
            self.join(source)
        if len(frame) < 14:
            return
        self.macs[frame[6:12]] = source
        target = self.macs.get(frame[0:6])
        if target is not None and not frame[0] & 1:
            if target != source:
                self.send(frame, target)
            return
        if time.monotonic() - self.scanned > RESCAN_S:
            self.rescan()
        for member in list(self.members):
            if member != source:
                self.send(frame, member)

    def send(self, frame: bytes, member: str) -> None:
        try:
            self.sock.sendto(frame, socket.MSG_DONTWAIT, member)
        except BlockingIOError:
            self.dropped += 1  # the receiver's queue is full: a switch drops
        except OSError as exc:
            if exc.errno not in GONE:
                raise
            self.leave(member)


def is_member_name(name: object) -> bool:
    """`../<instance>/<file>`: the only names QEMU binds for holos NICs."""
    if not isinstance(name, str):
        return False
    parts = name.split("/")
    return len(parts) == 3 and parts[0] == ".." and parts[1] not in ("", ".", "..")


class Nat:
    """Wires each instance's guest NIC to its own slirp, through nat_allows."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.guests: dict[str, str] = {}  # instance directory -> its guest socket's name

    def forward(self, frame: bytes, source: str) -> None:
        if not is_member_name(source):
            return
        directory, name = source.rsplit("/", 1)
        if name in (NAT_GUEST, NAT_GUEST_HOST):
            self.guests[directory] = name  # a guest speaks first (DHCP) when it boots
            if nat_allows(frame, name == NAT_GUEST_HOST):
                self.send(frame, f"{directory}/{NAT_SLIRP}")
        elif name == NAT_SLIRP:
            known = self.guests.get(directory)
            for target in [known] if known else [NAT_GUEST, NAT_GUEST_HOST]:
                self.send(frame, f"{directory}/{target}")

    def send(self, frame: bytes, target: str) -> None:
        # Full, or not the name this instance bound: a switch drops.
        with contextlib.suppress(OSError):
            self.sock.sendto(frame, socket.MSG_DONTWAIT, target)


def bind(path: str) -> socket.socket:
    with_stale = os.path.lexists(path)
    if with_stale:
        os.unlink(path)  # a socket left by a killed switch
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(path)
    sock.setblocking(False)
    return sock


def serve(networks: list[Network], nat: socket.socket | None) -> None:
    selector = selectors.DefaultSelector()
    for network in networks:
        network.rescan()
        selector.register(network.sock, selectors.EVENT_READ, network)
    if nat is not None:
        selector.register(nat, selectors.EVENT_READ, Nat(nat))
    while True:
        for key, _ in selector.select():
            sock = key.fileobj
            assert isinstance(sock, socket.socket)
            # Drain what is queued: the kernel holds only a few datagrams per socket
            # (net.unix.max_dgram_qlen) before senders see EAGAIN.
            while True:
                try:
                    frame, source = sock.recvfrom(MAX_FRAME)
                except BlockingIOError:
                    break
                key.data.forward(frame, source)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="holos-switch", description=__doc__.split("\n")[0])
    parser.add_argument("--sockets", required=True, help="directory to bind the sockets in")
    parser.add_argument(
        "--members", required=True, help="directory from which ../<inst>/ names resolve"
    )
    parser.add_argument("--network", action="append", default=[], help="NAME=ID")
    parser.add_argument("--no-nat", action="store_true", help="no NAT filter socket")
    parser.add_argument("--project", default="", help="prefix of the log lines")
    args = parser.parse_args(argv)
    for spec in args.network:
        name, _, ident = spec.partition("=")
        if not name or not ident.isalnum():
            parser.error(f"--network {spec!r}: expected NAME=ID")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    try:
        args = parse_args(argv)
    except SystemExit as exc:
        return 0 if exc.code == 0 else 2
    logging.basicConfig(
        level=logging.INFO,
        stream=sys.stderr,
        format=f"{args.project or 'holos-switch'}: %(message)s",
    )
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    sockets = os.path.abspath(args.sockets)  # before the chdir below
    try:
        os.chdir(args.members)
        networks = []
        for spec in args.network:
            name, _, ident = spec.partition("=")
            networks.append(Network(name, ident, bind(f"{sockets}/n-{ident}.sock")))
        nat = None if args.no_nat else bind(f"{sockets}/{NAT_SOCKET}")
    except OSError as exc:
        log.error("cannot set up: %s", exc)
        return 1
    log.info(
        "serving %s%s",
        ", ".join(n.name for n in networks) or "no network",
        "" if nat is None else " and NAT",
    )
    serve(networks, nat)
    return 0


if __name__ == "__main__":
    sys.exit(main())
