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

Each receiver gets frames through a socket of the switch connected to it (a `Port`):
the kernel holds only net.unix.max_dgram_qlen datagrams (10 by default) unread per
socket, so a QEMU whose main loop is late would lose a TCP window's burst; a connected
socket can be polled until that receiver has room, and its port queues up to
PORT_QUEUE_BYTES meanwhile. Frames beyond that, or to a receiver that is gone, are
dropped (a switch's semantics; TCP recovers). Exit codes: 0 on SIGTERM, 2 usage, 1 when
a socket cannot be bound. Standard library only; it never imports the compiler.

The switch counts the bytes it received from and sent to each socket since it started,
and writes them to ``<sockets>/counters.json`` at most once a second while they change
(`holosc stats` reads a guest's network I/O there: QEMU keeps no counters for its NICs).
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import errno
import glob
import json
import logging
import os
import resource
import selectors
import signal
import socket
import sys
import time
from collections.abc import Sequence

log = logging.getLogger("holos-switch")

MAX_FRAME = 65536
RESCAN_S = 1.0
COUNTERS_S = 1.0
COUNTERS_FILE = "counters.json"
# A receiver's backlog in the switch: a TCP window of slirp's (64 KiB) in 1514-byte
# frames several times over, or about 28 jumbo frames of a project network.
PORT_QUEUE_BYTES = 256 << 10
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
GUEST_NAMES = (NAT_GUEST, NAT_GUEST_HOST)
GONE = (errno.ENOENT, errno.ECONNREFUSED, errno.ENOTDIR, errno.ENOTCONN)


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


class Port:
    """The switch's way to one receiver: a socket connected to it, and the frames it had
    no room for yet."""

    __slots__ = ("path", "queue", "queued", "sock", "waiting")

    def __init__(self, path: str) -> None:
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.setblocking(False)
        try:
            self.sock.connect(path)
        except OSError:
            self.sock.close()
            raise
        self.queue: collections.deque[bytes] = collections.deque()
        self.queued = 0
        self.waiting = False  # registered for EVENT_WRITE


class Ports:
    """Every receiver's Port, by socket name; `send` never blocks."""

    def __init__(self, selector: selectors.BaseSelector) -> None:
        self.selector = selector
        self.ports: dict[str, Port] = {}
        self.dropped = 0
        self.sent: dict[str, int] = {}  # bytes handed to each receiver (delivered or queued)

    def send(self, frame: bytes, path: str) -> bool:
        """Deliver or queue `frame` for the socket `path`; False when nothing is bound
        there (any more)."""
        self.sent[path] = self.sent.get(path, 0) + len(frame)
        port = self.ports.get(path)
        if port is not None and self.try_send(port, frame):
            return True
        # New, or its socket is gone: a restarted QEMU may have bound the name again.
        try:
            port = self.ports[path] = Port(path)
        except OSError:
            return False  # nothing bound there, or nothing this switch may send to
        return self.try_send(port, frame)

    def try_send(self, port: Port, frame: bytes) -> bool:
        """False when the receiver is gone (the port is closed then)."""
        if port.queue:
            self.enqueue(port, frame)
            return True
        try:
            port.sock.send(frame)
        except BlockingIOError:
            self.enqueue(port, frame)
        except OSError as exc:
            self.close(port)
            if exc.errno not in GONE:
                self.dropped += 1  # e.g. a frame larger than its receiver takes
                return True
            return False
        return True

    def enqueue(self, port: Port, frame: bytes) -> None:
        if port.queued + len(frame) > PORT_QUEUE_BYTES:
            self.dropped += 1  # a switch drops what its port buffer cannot hold
            return
        port.queue.append(frame)
        port.queued += len(frame)
        if not port.waiting:
            self.selector.register(port.sock, selectors.EVENT_WRITE, port)
            port.waiting = True

    def flush(self, port: Port) -> None:
        """The receiver has room again: as much of the queue as it takes."""
        if self.ports.get(port.path) is not port:
            return  # closed earlier in this round of events
        queue = port.queue
        try:
            while queue:
                port.sock.send(queue[0])
                port.queued -= len(queue.popleft())
        except BlockingIOError:
            return
        except OSError:
            self.dropped += len(queue)
            self.close(port)
            return
        self.selector.unregister(port.sock)
        port.waiting = False

    def close(self, port: Port) -> None:
        if port.waiting:
            self.selector.unregister(port.sock)
            port.waiting = False
        port.sock.close()
        self.ports.pop(port.path, None)


class Network:
    """One learning switch: members by socket name, MACs to the member that sent last."""

    def __init__(self, name: str, ident: str, sock: socket.socket, ports: Ports) -> None:
        self.name = name
        self.socket_name = f"n-{ident}.sock"
        self.pattern = f"../*/{self.socket_name}"
        self.sock = sock
        self.ports = ports
        self.members: dict[str, None] = {}  # insertion-ordered set
        self.macs: dict[bytes, str] = {}
        self.scanned = 0.0

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
        if not self.ports.send(frame, member):
            self.leave(member)


def is_member_name(name: object) -> bool:
    """`../<instance>/<file>`: the only names QEMU binds for holos NICs."""
    if not isinstance(name, str):
        return False
    parts = name.split("/")
    return len(parts) == 3 and parts[0] == ".." and parts[1] not in ("", ".", "..")


class Nat:
    """Wires each instance's guest NIC to its own slirp, through nat_allows."""

    def __init__(self, ports: Ports) -> None:
        self.ports = ports
        self.guests: dict[str, str] = {}  # slirp socket -> its guest socket, once it spoke
        # A guest socket -> (its slirp socket, host_gateway); "" for a name that is none.
        self.routes: dict[str, tuple[str, bool]] = {}

    def forward(self, frame: bytes, source: str) -> None:
        route = self.routes.get(source)
        if route is None:
            route = self.routes[source] = self.route(source)
        slirp, host_gateway = route
        if slirp:
            self.guests[slirp] = source  # a guest speaks first (DHCP) when it boots
            if nat_allows(frame, host_gateway):
                self.ports.send(frame, slirp)
        elif source.endswith(f"/{NAT_SLIRP}"):
            known = self.guests.get(source)
            directory = source.rsplit("/", 1)[0]
            for target in [known] if known else [f"{directory}/{n}" for n in GUEST_NAMES]:
                self.ports.send(frame, target)  # not the name this instance bound: dropped

    @staticmethod
    def route(source: str) -> tuple[str, bool]:
        if not is_member_name(source):
            return "", False
        directory, name = source.rsplit("/", 1)
        if name not in GUEST_NAMES:
            return "", False
        return f"{directory}/{NAT_SLIRP}", name == NAT_GUEST_HOST


def bind(path: str) -> socket.socket:
    with_stale = os.path.lexists(path)
    if with_stale:
        os.unlink(path)  # a socket left by a killed switch
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(path)
    sock.setblocking(False)
    return sock


class Counters:
    """Bytes received from each socket (and sent to each, in `Ports.sent`), written to a
    file at most once every COUNTERS_S while they change."""

    def __init__(self, path: str, ports: Ports) -> None:
        self.path = path
        self.ports = ports
        self.received: dict[str, int] = {}
        self.written = 0.0
        self.last: tuple[int, int] = (-1, -1)

    def maybe_write(self) -> None:
        now = time.monotonic()
        if now - self.written < COUNTERS_S:
            return
        self.written = now
        totals = (sum(self.received.values()), sum(self.ports.sent.values()))
        if totals == self.last:
            return
        self.last = totals
        named = {  # an unbound sender has no name
            kind: {k: v for k, v in counts.items() if isinstance(k, str) and k}
            for kind, counts in (("received", self.received), ("sent", self.ports.sent))
        }
        text = json.dumps(named, sort_keys=True)
        try:
            with open(f"{self.path}.tmp", "w", encoding="utf-8") as out:
                out.write(text)
            os.replace(f"{self.path}.tmp", self.path)
        except OSError as exc:
            log.warning("cannot write %s: %s", self.path, exc)


def serve(
    selector: selectors.BaseSelector,
    networks: list[Network],
    nat: Nat | None,
    ports: Ports,
    counters: Counters,
) -> None:
    for network in networks:
        network.rescan()
    received = counters.received
    while True:
        counters.maybe_write()
        for key, _ in selector.select(COUNTERS_S):
            if isinstance(key.data, Port):
                ports.flush(key.data)
                continue
            sock = key.fileobj
            assert isinstance(sock, socket.socket)
            # Drain what is queued: the kernel holds only a few datagrams per socket
            # (net.unix.max_dgram_qlen) before senders see EAGAIN.
            receive, forward = sock.recvfrom, key.data.forward
            while True:
                try:
                    frame, source = receive(MAX_FRAME)
                except BlockingIOError:
                    break
                received[source] = received.get(source, 0) + len(frame)
                forward(frame, source)


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
    # A socket per receiver (Ports): every NIC of the project, past the soft limit of
    # 1024 descriptors that systemd gives services in a large project.
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    with contextlib.suppress(ValueError, OSError):  # an infinite hard limit is no soft one
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    sockets = os.path.abspath(args.sockets)  # before the chdir below
    selector = selectors.DefaultSelector()
    ports = Ports(selector)
    try:
        os.chdir(args.members)
        networks = []
        for spec in args.network:
            name, _, ident = spec.partition("=")
            sock = bind(f"{sockets}/n-{ident}.sock")
            networks.append(Network(name, ident, sock, ports))
            selector.register(sock, selectors.EVENT_READ, networks[-1])
        nat = None
        if not args.no_nat:
            nat = Nat(ports)
            selector.register(bind(f"{sockets}/{NAT_SOCKET}"), selectors.EVENT_READ, nat)
    except OSError as exc:
        log.error("cannot set up: %s", exc)
        return 1
    log.info(
        "serving %s%s",
        ", ".join(n.name for n in networks) or "no network",
        "" if nat is None else " and NAT",
    )
    serve(selector, networks, nat, ports, Counters(f"{sockets}/{COUNTERS_FILE}", ports))
    return 0


if __name__ == "__main__":
    sys.exit(main())
