"""Secrets in the guest: QEMU hands each one over as a fw_cfg file, and a boot command
copies it to its target (by default /run/secrets/<name>, a tmpfs) with its mode and
owner on every boot. Neither the compiled output nor the seed holds a secret's bytes;
the launch script names the host file, which QEMU reads when it starts.
"""

from __future__ import annotations

import posixpath

from holosc.core.model import Service
from holosc.core.render.escape import shell_word

FW_CFG_DIR = "/sys/firmware/qemu_fw_cfg/by_name"


def fw_cfg_name(index: int) -> str:
    # fw_cfg names are at most 55 bytes and user entries start with "opt/".
    return f"opt/holos/s{index}"


def guest_command(service: Service) -> list[str] | None:
    """A bootcmd (every boot, before services start) that installs the service's secrets."""
    if not service.secrets:
        return None
    lines = [
        "modprobe qemu_fw_cfg 2>/dev/null || true",
        f"d={FW_CFG_DIR}",
        # The ACPI device may appear a moment after the module loads.
        'for _ in $(seq 50); do [ -e "$d/opt/holos" ] && break; sleep 0.1; done',
    ]
    for i, use in enumerate(service.secrets):
        source = f'"$d"/{fw_cfg_name(i)}/raw'
        lines.append(f"install -d -m 0755 {shell_word(posixpath.dirname(use.target))}")
        lines.append(
            f"install -m {use.mode:04o} -o {use.uid} -g {use.gid} {source} {shell_word(use.target)}"
        )
    return ["sh", "-ec", "\n".join(lines)]
