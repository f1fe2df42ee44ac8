"""QEMU fw_cfg files as the guest reads them: /sys/firmware/qemu_fw_cfg/by_name/<name>/raw.

Secrets and the project's peer list reach guests this way: QEMU reads the host file when
it starts, and nothing of it is in the seed or the compiled output.
"""

from __future__ import annotations

DIR = "/sys/firmware/qemu_fw_cfg/by_name"


def raw(name: str) -> str:
    """The guest path of fw_cfg file `name` (user entries start with "opt/")."""
    return f"{DIR}/{name}/raw"


def wait_lines(path: str) -> list[str]:
    """sh lines that load the driver and wait up to 5 s for `path` (a shell word): the
    ACPI device may appear a moment after the module loads."""
    return [
        "modprobe qemu_fw_cfg 2>/dev/null || true",
        f"for _ in $(seq 50); do [ -e {path} ] && break; sleep 0.1; done",
    ]
