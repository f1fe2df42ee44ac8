"""The guest side of peer names (render/hosts.py), run by a real sh.

Each script runs in a private mount namespace whose /etc is an empty tmpfs, so the
/etc/hosts it writes is a scratch file, never this machine's. The boot command reads
QEMU's fw_cfg file from sysfs; here a tmpfs over /sys/firmware stands in for the
firmware (a real guest reads the real one in tests/e2e/test_stack.py).
"""

from __future__ import annotations

import os
import shlex
import subprocess

from holosc.core.model import Attachment, Image, OsFamily, Service
from holosc.core.render import hosts

PEERS = "# holos project shop\n10.10.0.2 db db-0\n10.10.0.3 web web-0\n"
BACK = "# holos project shop, network back\n10.10.1.2 db db-0 database\n"
WEB = Service(
    "web",
    Image("qcow2", OsFamily.SYSTEMD, path="x"),
    networks=(Attachment("back"), Attachment("default")),
    extra_hosts=(("host.docker.internal", "host-gateway"), ("mirror", "192.0.2.7")),
)


def in_scratch_etc(script: str, stdin: str = "", firmware: tuple[str, ...] = ()) -> str:
    """Run `script` with sh in a mount namespace with an empty /etc; print /etc/hosts.
    `firmware` are the fw_cfg peer files QEMU would hand over, in order."""
    setup = ["mount -t tmpfs tmpfs /etc"]
    if firmware:
        setup.append("mount -t tmpfs tmpfs /sys/firmware")
    for index, text in enumerate(firmware):
        raw = f"/sys/firmware/qemu_fw_cfg/by_name/{hosts.fw_cfg_name(index)}"
        setup += [f"mkdir -p {raw}", f"printf %s {shlex.quote(text)} > {raw}/raw"]
    inner = "\n".join(
        [
            *setup,
            f"sh -ec {shlex.quote(script)}",
            "ls -A /etc | grep -v '^holos$'",
            "stat -c %a /etc/hosts",
            "cat /etc/hosts",
        ]
    )
    unshare = ["unshare", "--mount"] if os.geteuid() == 0 else ["unshare", "-rm"]
    result = subprocess.run(
        [*unshare, "sh", "-ec", inner], input=stdin, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_update_writes_the_peer_list_under_the_header() -> None:
    out = in_scratch_etc(hosts.update_command()[2], stdin=PEERS)
    assert out == "hosts\n644\n" + hosts.HEADER + PEERS  # no temporary file left behind


EXTRA = "10.0.2.2 host.docker.internal\n192.0.2.7 mirror\n"


def test_boot_command_reads_the_lists_qemu_handed_over() -> None:
    """Each network's list, in the NICs' order, after the service's extra hosts."""
    argv = hosts.boot_command(WEB)
    assert argv[:2] == ["sh", "-ec"]
    out = in_scratch_etc(argv[2], firmware=(BACK, PEERS))
    assert out == "hosts\n644\n" + hosts.HEADER + EXTRA + BACK + PEERS


def test_update_keeps_the_extra_hosts() -> None:
    script = hosts.boot_command(WEB)[2] + "\n" + hosts.update_command()[2]
    out = in_scratch_etc(script, stdin=PEERS, firmware=(BACK, PEERS))
    assert out == "hosts\n644\n" + hosts.HEADER + EXTRA + PEERS


def test_boot_command_without_fw_cfg_keeps_the_old_list() -> None:
    # No fw_cfg file ever appears: its 5 s wait is skipped (sleep is a no-op here), and
    # nothing loads a module on this host.
    shims = "sleep() { :; }\nmodprobe() { :; }\n"
    keep = shims + "printf '10.10.0.9 old\\n' > /etc/hosts\n" + hosts.boot_command(WEB)[2]
    out = in_scratch_etc(keep)
    assert out == "hosts\n644\n10.10.0.9 old\n"
