"""Shell completion of service and instance names from the holos.yaml in the current
directory (`holosc --install-completion` sets it up for bash, zsh and fish).

Completion runs on every Tab: it reads the file with a plain YAML parse, not the
compiler, and says nothing when there is no readable holos.yaml.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any


def _services() -> dict[str, int]:
    import yaml

    for name in ("holos.yaml", "holos.yml"):
        try:
            data: Any = yaml.safe_load(Path(name).read_text(encoding="utf-8"))
        except (OSError, yaml.YAMLError, UnicodeDecodeError):
            continue
        services = data.get("services") if isinstance(data, dict) else None
        if isinstance(services, dict):
            return {
                str(n): s.get("replicas", 1) if isinstance(s, dict) else 1
                for n, s in services.items()
            }
    return {}


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


def instance_paths(incomplete: str) -> list[str]:
    """`web-0:` for `holosc cp` (the path after the colon is the guest's)."""
    return [f"{n}:" for n in _instances() if f"{n}:".startswith(incomplete)]
