"""Peer names: how every guest resolves `db`, `web-1`, ... of the networks it is on.

Each network's list of names and addresses is one compiled project file,
`<p>/hosts.<network>` (layout.peers_name), never part of an instance's own files:
scaling or adding a service changes those files alone, so no other instance is restarted
(compose semantics). QEMU hands an instance the files of its networks as the fw_cfg files
`opt/holos/hosts.00`, `.01`, ... when the guest starts, and a boot command writes
/etc/hosts from them on every boot, after the service's own `extra_hosts` (kept in
/etc/holos/hosts.extra). Guests that keep running while a list changes get it over SSH
from `holosc up` (holosc/host/peers.py), through the same script.
"""

from __future__ import annotations

from holosc.core import plan as P
from holosc.core.model import HOST_GATEWAY, Service
from holosc.core.render import fwcfg
from holosc.core.render.escape import shell_word

# What host-gateway resolves to: QEMU's user-mode network maps it to the host's loopback,
# and the switch's NAT filter passes it only for the services that asked (extra_hosts).
HOST_GATEWAY_IP = "10.0.2.2"
EXTRA = "/etc/holos/hosts.extra"

# No "127.0.1.1 <hostname>" line: the instance's own name is listed with its private IP,
# and glibc would answer 127.0.1.1 first (a replica would advertise loopback to peers).
HEADER = (
    "127.0.0.1 localhost\n"
    "::1 localhost ip6-localhost ip6-loopback\n"
    "ff02::1 ip6-allnodes\n"
    "ff02::2 ip6-allrouters\n"
)


def fw_cfg_name(index: int) -> str:
    """The fw_cfg file of an instance's `index`th network's peer list."""
    return f"opt/holos/hosts.{index:02d}"


def peers(plan: P.Plan, network: str) -> str:
    """The compiled `<p>/hosts.<network>`: one line per instance on it; `svc` and its
    aliases there also name replica 0."""
    lines = [f"# holos project {plan.project.name}, network {network}"]
    lines += [f"{ip} {' '.join(names)}" for ip, names in plan.hosts(network)]
    return "\n".join(lines) + "\n"


def extra_lines(service: Service) -> str:
    """The service's extra_hosts as /etc/hosts lines (host-gateway is the host)."""
    return "".join(
        f"{HOST_GATEWAY_IP if ip == HOST_GATEWAY else ip} {name}\n"
        for name, ip in service.extra_hosts
    )


def write_script(source: str) -> str:
    """sh lines that replace /etc/hosts with HEADER, the service's extra hosts and the
    peer lists read from `source` (shell words), atomically: a resolver never sees half
    a file."""
    return "\n".join(
        [
            "tmp=/etc/.hosts.holos",
            f"{{ printf '%s' {shell_word(HEADER)}; cat {EXTRA} 2>/dev/null || true; "
            f'cat {source}; }} >"$tmp"',
            'chmod 0644 "$tmp"',
            'mv -f "$tmp" /etc/hosts',
        ]
    )


def boot_command(service: Service, lists: int | None = None) -> list[str]:
    """A bootcmd (every boot, before services start) writing /etc/hosts from the
    service's extra hosts and the fw_cfg files of its `lists` networks that have peer
    lists (default: all). A guest without the fw_cfg driver keeps the peers it had, and
    says so."""
    count = len(service.networks) if lists is None else lists
    files = [fwcfg.raw(fw_cfg_name(i)) for i in range(count)]
    lines = [
        f"mkdir -p {shell_word(EXTRA.rsplit('/', 1)[0])}",
        f"printf '%s' {shell_word(extra_lines(service))} >{EXTRA}",
    ]
    if files:
        lines += [
            f"f={files[0]}",
            *fwcfg.wait_lines('"$f"'),
            '[ -e "$f" ] || { echo "holos: no $f: peer names not updated" >&2; exit 0; }',
        ]
    lines.append(write_script(" ".join(files) if files else "/dev/null"))
    return ["sh", "-ec", "\n".join(lines)]


def update_command() -> list[str]:
    """What `holosc up` runs in a running guest as its login user, the peer lists on stdin:
    the same script as root (the user itself, sudo or doas: cloud-init gave it one)."""
    return [
        "sh",
        "-ec",
        f"s={shell_word(write_script('-'))}\n"
        'if [ "$(id -u)" = 0 ]; then set --; '
        "elif command -v sudo >/dev/null; then set -- sudo -n; else set -- doas; fi\n"
        '"$@" sh -ec "$s"',
    ]
