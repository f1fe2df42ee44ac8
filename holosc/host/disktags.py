"""The internal snapshots in qcow2 files, through qemu-img: read, and deleted from the
named volumes when `down` removes the instances they belonged to (holosc/host/snapshots.py
owns the rest)."""

from __future__ import annotations

import json
from pathlib import Path

from holos_runtime.optstrings import qemu_value

from holosc.core import layout
from holosc.errors import RuntimeCommandError
from holosc.host import run
from holosc.host.systemd import Manager

QEMU_IMG_TIMEOUT = 600.0


def qemu_img(*args: str) -> str:
    """stdout of qemu-img; its message is the error.

    :raises RuntimeCommandError: when it fails or is missing.
    """
    return run.run(["qemu-img", *args], timeout=QEMU_IMG_TIMEOUT, hint="install qemu-utils").stdout


def image(path: Path) -> str:
    """`path` for qemu-img's --image-opts: the format pinned to qcow2, never probed."""
    return f"driver=qcow2,file.driver=file,file.filename={qemu_value(str(path))}"


def snapshot(action: str, label: str, path: Path) -> None:
    """`qemu-img snapshot -c|-a|-d LABEL` on the qcow2 file at `path` (not in use)."""
    qemu_img("snapshot", "--image-opts", action, label, "--", image(path))


def tags(path: Path) -> dict[str, int]:
    """The internal snapshots in a qcow2 file: tag -> creation time (the file may be open
    in a running QEMU: read with -U)."""
    if not path.exists():
        return {}
    info = json.loads(qemu_img("info", "--image-opts", "-U", "--output=json", "--", image(path)))
    return {s["name"]: int(s.get("date-sec", 0)) for s in info.get("snapshots", [])}


def remove_volume_tags(manager: Manager, project: str) -> None:
    """Delete every snapshot tag from the project's named volumes (`down` keeps the
    volumes, not the snapshots of instances it removes)."""
    for path in sorted(layout.volumes(manager.state_dir, project).glob("*.qcow2")):
        try:
            for label in tags(path):
                if label.startswith(layout.SNAPSHOT_PREFIX):
                    snapshot("-d", label, path)
        except (RuntimeCommandError, ValueError):
            continue  # a volume qemu-img cannot read keeps its tags: nothing else lost
