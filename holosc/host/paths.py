"""The default systemd scope. Where things live is asked of the manager (holosc.host.systemd)."""

from __future__ import annotations

import os


def default_scope() -> str:
    return "system" if os.geteuid() == 0 else "user"
