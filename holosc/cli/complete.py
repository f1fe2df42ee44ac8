"""Shell completion of service, instance and snapshot names from the holos.yaml in the
current directory (`holosc --install-completion` sets it up for bash, zsh and fish).

Completion runs on every Tab: it reads the file with a plain YAML parse, not the
compiler, and says nothing when there is no readable holos.yaml.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any


def _document() -> dict[str, Any]:
    import yaml

    for name in ("holos.yaml", "holos.yml"):
        try:
            data: Any = yaml.safe_load(Path(name).read_text(encoding="utf-8"))
        except (OSError, yaml.YAMLError, UnicodeDecodeError):
            continue
        if isinstance(data, dict):
            return data
    return {}


def _services() -> dict[str, int]:
    services = _document().get("services")
    if not isinstance(services, dict):
        return {}
    return {str(n): s.get("replicas", 1) if isinstance(s, dict) else 1 for n, s in services.items()}


def _instances() -> list[str]:
    return [
        f"{name}-{i}"
        for name, replicas in _services().items()
        for i in range(replicas if isinstance(replicas, int) and 0 <= replicas <= 253 else 1)
    ]


def services(incomplete: str) -> list[str]:
    return [n for n in _services() if n.startswith(incomplete)]


def instances(incomplete: str) -> list[str]:
    return [n for n in _instances() if n.startswith(incomplete)]


def services_and_instances(incomplete: str) -> list[str]:
    return [n for n in [*_services(), *_instances()] if n.startswith(incomplete)]


def snapshots(incomplete: str) -> list[str]:
    """The snapshots of the project's instances in the default scope's state directory
    (the qcow2 snapshot tables read directly: no qemu-img per Tab)."""
    from holosc.core import layout, names
    from holosc.host import snapsize, systemd

    project = _document().get("name")
    if not names.is_label(project):
        return []
    try:
        root = layout.instances(systemd.manager().state_dir, str(project))
        disks = sorted(root.glob("*/root.qcow2"))
    except Exception:  # no manager to ask: nothing to offer
        return []
    found: set[str] = set()
    for disk in disks:
        try:
            with disk.open("rb") as stream:
                tags = snapsize.Image(stream).snapshots
        except (OSError, ValueError):
            continue
        found |= {t.rpartition("/")[2] for t in tags if t.startswith(layout.SNAPSHOT_PREFIX)}
    return sorted(n for n in found if n.startswith(incomplete))


def instance_paths(incomplete: str) -> list[str]:
    """`web-0:` for `holosc cp` (the path after the colon is the guest's)."""
    return [f"{n}:" for n in _instances() if f"{n}:".startswith(incomplete)]
