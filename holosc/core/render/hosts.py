"""Peer names: how every guest resolves `db`, `web-1`, ... of its project.

The project's list of names and addresses is one compiled file, `<p>/hosts`
(layout.PEERS_FILE), never part of an instance's own files: scaling or adding a service
changes that file alone, so no other instance is restarted (compose semantics). QEMU
hands it to each guest as the fw_cfg file `opt/holos/hosts` when the guest starts, and a
boot command writes /etc/hosts from it on every boot. Guests that keep running while the
list changes get it over SSH from `holosc up` (holosc/peers.py), through the same script.
"""

from __future__ import annotations

from holosc.core import plan as P
from holosc.core.render import fwcfg
from holosc.core.render.escape import shell_word

FW_CFG_NAME = "opt/holos/hosts"

# No "127.0.1.1 <hostname>" line: the instance's own name is listed with its private IP,
# and glibc would answer 127.0.1.1 first (a replica would advertise loopback to peers).
HEADER = (
    "127.0.0.1 localhost\n"
    "::1 localhost ip6-localhost ip6-loopback\n"
    "ff02::1 ip6-allnodes\n"
    "ff02::2 ip6-allrouters\n"
)


def peers(plan: P.Plan) -> str:
    """The compiled `<p>/hosts`: one line per instance; `svc` also names replica 0."""
    lines = [f"# holos project {plan.project.name}"]
    lines += [f"{ip} {' '.join(names)}" for ip, names in plan.hosts()]
    return "\n".join(lines) + "\n"


def write_script(source: str) -> str:
    """sh lines that replace /etc/hosts with HEADER and the peer list read from `source`
    (a shell word), atomically: a resolver never sees half a file."""
    return "\n".join(
        [
            "tmp=/etc/.hosts.holos",
            f"{{ printf '%s' {shell_word(HEADER)}; cat {source}; }} >\"$tmp\"",
            'chmod 0644 "$tmp"',
            'mv -f "$tmp" /etc/hosts',
        ]
    )


def boot_command() -> list[str]:
    """A bootcmd (every boot, before services start) writing /etc/hosts from fw_cfg. A
    guest without the fw_cfg driver keeps the /etc/hosts it has, and says so."""
    lines = [
        f"f={fwcfg.raw(FW_CFG_NAME)}",
        *fwcfg.wait_lines('"$f"'),
        '[ -e "$f" ] || { echo "holos: no $f: peer names not updated" >&2; exit 0; }',
        write_script('"$f"'),
    ]
    return ["sh", "-ec", "\n".join(lines)]


def update_command() -> list[str]:
    """What `holosc up` runs in a running guest as its login user, the peer list on stdin:
    the same script as root (the user itself, sudo or doas: cloud-init gave it one)."""
    return [
        "sh",
        "-ec",
        f"s={shell_word(write_script('-'))}\n"
        'if [ "$(id -u)" = 0 ]; then set --; '
        "elif command -v sudo >/dev/null; then set -- sudo -n; else set -- doas; fi\n"
        '"$@" sh -ec "$s"',
    ]
