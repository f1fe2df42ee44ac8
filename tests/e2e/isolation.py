"""What the e2e stack proves about its networks, from inside and outside the guests.

The private systemd's network namespace is the "host": it gets a listener on its
loopback (a service guests must not reach unless they asked), a veth with a documentation
address as "beyond the host" (what NAT must still reach), and another local user who tries
the project's network. Traffic stays in namespaces the test made.
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tests.systemd_harness import PrivateSystemd

LOOPBACK_PORT = 7070  # a service bound to the host's 127.0.0.1 only
CRAFTED = "127.0.0.2"  # where a guest's crafted packet goes (also the host's loopback)
OUTSIDE = "192.0.2.1"  # TEST-NET-1, on a veth of the test's namespace
OUTSIDE_PORT = 7071
NOBODY = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]
LAN_BRIDGE = "holos-lan"  # an external network: a bridge with a DHCP server (busybox)
LAN = "192.168.77"

# The answer names what was reached; one listener thread per address. Every accepted
# connection is logged: slirp connects on the host even when the guest never sees the
# answer (a crafted packet's reply is a martian to it).
SERVE = """
import socket, sys, threading
log = open(sys.argv[1], "a", buffering=1)
def serve(addr):
    s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(addr); s.listen()
    while True:
        c, _ = s.accept(); log.write(addr[0] + "\\n")
        c.sendall(f"reached {addr[0]}\\n".encode()); c.close()
for a in sys.argv[2:]:
    host, port = a.rsplit(":", 1)
    threading.Thread(target=serve, args=((host, int(port)),), daemon=True).start()
threading.Event().wait()
"""

# A guest's view: connect, print what answered or why not.
CONNECT = (
    "python3 -c 'import socket,sys\n"
    "try: s = socket.create_connection((sys.argv[1], int(sys.argv[2])), 5)\n"
    'except OSError as e: print("refused:", e)\n'
    "else: print(s.recv(64).decode().strip())' "
)

# Another local user against a network: as the old multicast, and as the switch.
ATTACK = """
import socket, struct, sys
kind, target = sys.argv[1], sys.argv[2]
if kind == "mcast":
    group, port = target.split(":")
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind((group, int(port)))
    s.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP,
                 socket.inet_aton(group) + socket.inet_aton("127.0.0.1"))
    s.settimeout(10)
    print("sniffed", len(s.recv(65536)), "bytes")
    s.sendto(b"\\xff" * 6 + b"injected", (group, int(port)))
    print("injected")
else:
    s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    for what, act in (("send", lambda: s.sendto(b"\\xff" * 6 + b"injected", target)),
                      ("join", lambda: s.bind(target + ".x")),
                      ("sniff", lambda: __import__("os").listdir(target.rsplit("/", 1)[0]))):
        try:
            act(); print(what, "ok")
        except OSError as exc:
            print(what, type(exc).__name__)
"""


@contextmanager
def host_services(sd: PrivateSystemd, log: Path) -> Iterator[None]:
    """The listeners (accepted connections logged to `log`), the veth that carries
    OUTSIDE (with the default route), and a LAN: a bridge whose DHCP server (busybox
    udhcpd) leases LAN.100-150."""
    conf = log.with_name("udhcpd.conf")
    conf.write_text(
        f"start {LAN}.100\nend {LAN}.150\ninterface {LAN_BRIDGE}\n"
        f"lease_file {log.with_name('udhcpd.leases')}\noption subnet 255.255.255.0\n"
    )
    log.with_name("udhcpd.leases").touch()
    for argv in (
        ["ip", "link", "add", LAN_BRIDGE, "type", "bridge"],
        ["ip", "addr", "add", f"{LAN}.1/24", "dev", LAN_BRIDGE],
        ["ip", "link", "set", LAN_BRIDGE, "up"],
        ["ip", "link", "add", "holos-out", "type", "veth", "peer", "name", "holos-peer"],
        ["ip", "addr", "add", f"{OUTSIDE}/24", "dev", "holos-out"],
        ["ip", "link", "set", "holos-out", "up"],
        ["ip", "link", "set", "holos-peer", "up"],
        ["ip", "route", "add", "default", "dev", "holos-out"],
    ):
        sd.run(argv)
    server = subprocess.Popen(
        [*sd.nsenter(), "--", sys.executable, "-c", SERVE, str(log), f"127.0.0.1:{LOOPBACK_PORT}",
         f"{CRAFTED}:{LOOPBACK_PORT}", f"{OUTSIDE}:{OUTSIDE_PORT}"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    dhcp = subprocess.Popen(
        [*sd.nsenter(), "--", "busybox", "udhcpd", "-f", str(conf)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        yield
    finally:
        for process in (server, dhcp):
            process.terminate()
            process.wait(timeout=30)


def as_nobody(sd: PrivateSystemd, kind: str, target: str) -> str:
    return sd.run([*NOBODY, "/usr/bin/python3", "-c", ATTACK, kind, target], check=False).stdout


def multicast_attack(sd: PrivateSystemd) -> str:
    """What the old transport allowed: root's frames to a loopback multicast group (as
    QEMU's `-netdev socket,mcast=...,localaddr=127.0.0.1` sent them), read and answered
    by another user."""
    group, port = "239.1.2.3", "12345"
    argv = [*NOBODY, "/usr/bin/python3", "-c", ATTACK, "mcast", f"{group}:{port}"]
    attacker = subprocess.Popen(
        [*sd.nsenter(), "--", *argv], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    send = (
        "import socket,time\n"
        "s=socket.socket(socket.AF_INET,socket.SOCK_DGRAM)\n"
        "s.setsockopt(socket.IPPROTO_IP,socket.IP_MULTICAST_IF,socket.inet_aton('127.0.0.1'))\n"
        f"[(s.sendto(b'frame'*20,('{group}',{port})),time.sleep(0.2)) for _ in range(25)]\n"
    )
    sd.run([sys.executable, "-c", send])
    out, _ = attacker.communicate(timeout=30)
    return out


def wait_restarted(sd: PrivateSystemd, unit: str, old_pid: str, timeout: float = 30) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        pid = sd.systemctl("show", "-p", "MainPID", "--value", unit).stdout.strip()
        if pid not in ("0", old_pid):
            return pid
        time.sleep(0.2)
    raise AssertionError(f"{unit} did not restart")
