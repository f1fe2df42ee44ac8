"""Networks: VM-to-VM throughput and round-trip time on the project switch against the
loopback multicast it replaced, and guest-to-host-service throughput through the NAT
(issue 23). Prints numbers, asserts nothing. Needs root and the Debian test guest of
tests/e2e; boots real guests (TCG), so run it under the VM lock:

    flock /tmp/holosc-vm.lock .venv/bin/python bench/network.py [ROUNDS]

Two guests of one service, `holosc up` in a private systemd. The same installed launch
scripts are then rewritten to today's transports of the old holosc (the project network as
`-netdev socket,mcast=...,localaddr=127.0.0.1`, the NAT NIC straight on slirp) and the
guests restarted, so only the transport differs between the two columns. Throughput is
python sockets in the guests (64 MiB per run, timed in the sender after the receiver
acknowledged the last byte); RTT is ping's average over 20 echoes 0.2 s apart; the
host service is a sink on an address of a veth in the test's namespace. Medians of
ROUNDS (default 3) per figure.
"""

from __future__ import annotations

import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import tests.conftest  # noqa: E402,F401  (imports tests.guestkernel without a cycle)
from tests.e2e.test_stack import BOOTED, GUEST  # noqa: E402
from tests.guest.image import image_dir  # noqa: E402
from tests.systemd_harness import PrivateSystemd  # noqa: E402

PROJECT = (
    GUEST
    + """name: bench
services:
  vm:
    <<: *guest
    replicas: 2
    cloud_init: {user: holos}
"""
)
MIB = 64
PORT = 5001
HOST = "192.0.2.1"  # on a veth of the test's namespace: "beyond the host" for the NAT
SINK = f"""
import socket, sys
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind((sys.argv[1], {PORT})); s.listen()
while True:
    c, _ = s.accept(); n = 0
    while n < {MIB} << 20:
        d = c.recv(1 << 16)
        if not d: break
        n += len(d)
    c.sendall(b"k"); c.close()
"""
SEND = f"""
import socket, sys, time
s = socket.create_connection((sys.argv[1], {PORT}), 10)
block = bytes(1 << 16); t = time.monotonic()
for _ in range({MIB} << 4): s.sendall(block)
s.recv(1); print(f"{{{MIB} * 8 * 1.048576 / (time.monotonic() - t):.1f}}")
"""


def holosc(sd: PrivateSystemd, project: Path, *args: str) -> str:
    result = sd.holosc(*args, cwd=project, timeout=1800)
    if result.returncode != 0:
        raise SystemExit(f"holosc {' '.join(args)} failed:\n{result.stderr}")
    return result.stdout


def guest(sd: PrivateSystemd, project: Path, inst: str, command: str) -> str:
    return holosc(sd, project, "exec", "-w", "900", inst, "--", "sh", "-c", command)


def wait_booted(sd: PrivateSystemd, project: Path, inst: str) -> None:
    """Until cloud-init finished this boot (it removes boot-finished when it starts)."""
    deadline = time.monotonic() + 1800
    while sd.holosc("exec", "-w", "900", inst, "--", "sh", "-c", BOOTED, cwd=project).returncode:
        if time.monotonic() > deadline:
            raise SystemExit(f"{inst} did not finish booting")
        time.sleep(5)


def legacy(launch: str) -> str:
    """A launch script as the old holosc wrote it: multicast for the project network,
    the NAT NIC straight on slirp."""
    out = []
    for line in launch.splitlines():
        if (
            "hubport" in line
            or "id=slirp-link" in line
            or ("local.path=../" in line and "id=net0" in line)
        ):
            continue
        line = line.replace("user,id=slirp,", "user,id=net0,")
        line = re.sub(
            r"dgram,id=(net\d+),local\.type=unix,\S*n-[0-9a-f]+\.sock",
            r"socket,id=\1,mcast=239.1.2.3:12345,localaddr=127.0.0.1",
            line,
        )
        out.append(line)
    return "\n".join(out) + "\n"


def measure(
    sd: PrivateSystemd, project: Path, rounds: int, mtu: int | None = None
) -> dict[str, float]:
    lock = __import__("json").loads(
        (sd.state / "etc-holos" / "bench" / "holos.lock.json").read_text()
    )
    peer = lock["instances"]["vm-1"]["ip"]
    for inst in ("vm-0", "vm-1"):
        wait_booted(sd, project, inst)
        if mtu is not None:
            nic = "ip -o -4 addr show to 10.10.0.0/24 | cut -d' ' -f2"
            guest(sd, project, inst, f"sudo ip link set dev $({nic}) mtu {mtu}")
    guest(sd, project, "vm-1", f"sudo systemd-run --unit=sink python3 -c '{SINK}' {peer}")
    rtt, vm, nat = [], [], []
    for _ in range(rounds):
        ping = guest(sd, project, "vm-0", f"ping -q -c 20 -i 0.2 {peer}")
        rtt.append(float(re.search(r"= [\d.]+/([\d.]+)/", ping)[1]))  # type: ignore[index]
        vm.append(float(guest(sd, project, "vm-0", f"python3 -c '{SEND}' {peer}")))
        nat.append(float(guest(sd, project, "vm-0", f"python3 -c '{SEND}' {HOST}")))
    return {
        "rtt_ms": statistics.median(rtt),
        "vm_to_vm_mbit": statistics.median(vm),
        "to_host_mbit": statistics.median(nat),
    }


def main() -> None:
    rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 3
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        project = root / "project"
        project.mkdir()
        (project / "holos.yaml").write_text(PROJECT)
        (project / "guest").symlink_to(image_dir())
        sd = PrivateSystemd(root / "systemd").start()
        sink = None
        try:
            for argv in (
                "ip link add bench-out type veth peer name bench-peer",
                f"ip addr add {HOST}/24 dev bench-out",
                "ip link set bench-out up",
                "ip link set bench-peer up",
                "ip route add default dev bench-out",
            ):
                sd.run(argv.split())
            sink = subprocess.Popen(
                [*sd.nsenter(), "--", sys.executable, "-c", SINK, HOST],
                stdout=subprocess.DEVNULL,
            )
            began = time.monotonic()
            holosc(sd, project, "up")
            new = measure(sd, project, rounds)
            print(f"switch ({time.monotonic() - began:.0f} s after up): {new}", flush=True)
            for inst in ("vm-0", "vm-1"):
                script = sd.state / "etc-holos" / "bench" / inst / "launch.sh"
                script.write_text(legacy(script.read_text()))
            sd.systemctl("restart", "holos-bench-vm@0.service", "holos-bench-vm@1.service")
            # ... and the old MTU: the network-config in the seed asks for jumbo frames.
            old = measure(sd, project, rounds, mtu=1500)
            print(f"multicast and slirp: {old}", flush=True)
            print(f"\n{'':24} {'multicast/slirp':>16} {'switch':>10} {'ratio':>7}")
            for key, label in (
                ("vm_to_vm_mbit", "VM to VM (Mbit/s)"),
                ("rtt_ms", "VM to VM RTT (ms)"),
                ("to_host_mbit", "guest to host (Mbit/s)"),
            ):
                print(f"{label:24} {old[key]:>16.1f} {new[key]:>10.1f} {new[key] / old[key]:>7.2f}")
            holosc(sd, project, "down")
        finally:
            if sink is not None:
                sink.terminate()
            sd.stop()


if __name__ == "__main__":
    main()
