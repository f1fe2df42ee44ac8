"""Host locations: the state root per systemd scope, matching what %S resolves to."""

from __future__ import annotations

import os
from pathlib import Path


def default_scope() -> str:
    return "system" if os.geteuid() == 0 else "user"


def state_root(scope: str | None = None) -> Path:
    """`<%S>/holos`: /var/lib/holos for the system manager, the user's %S otherwise.

    systemd 252 maps %S of the user manager to $XDG_CONFIG_HOME (default ~/.config).
    HOLOSC_STATE_DIR overrides both.
    """
    if os.environ.get("HOLOSC_STATE_DIR"):
        return Path(os.environ["HOLOSC_STATE_DIR"])
    if (scope or default_scope()) == "system":
        return Path("/var/lib/holos")
    config = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(config) / "holos"
