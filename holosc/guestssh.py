"""SSH from this host into a running instance: the one way `holosc exec` and `holosc up`
reach a guest (the health helper, which never imports holosc, builds the same options).

The guest answers on its forwarded port of 127.0.0.1; ssh accepts only the host key that
holos-seed pinned for it when it started, and logs in with the project key.
"""

from __future__ import annotations

import shlex
from pathlib import Path

from holosc import keys
from holosc import plan as P
from holosc.errors import Diagnostic, RuntimeCommandError
from holosc.systemd import Manager


def known_hosts(manager: Manager, project: str, instance: str) -> Path:
    return manager.state_dir / "instances" / project / instance / "known_hosts"


def ssh_argv(
    manager: Manager,
    project: str,
    instance: str,
    port: int,
    user: str,
    command: list[str],
    options: tuple[str, ...] = (),
) -> list[str]:
    """ssh to `instance` running COMMAND (argv; none: an interactive shell).

    `--` ends ssh's options (ssh parses options after the destination otherwise), and each
    word of COMMAND is quoted for the remote shell, which ssh joins with spaces: the guest
    runs exactly this argv.

    :raises RuntimeCommandError: when the instance has no pinned host key yet.
    """
    pins = known_hosts(manager, project, instance)
    if not pins.is_file():
        message = f"{instance} has no pinned host key ({pins} is missing)"
        hint = "the instance writes it when it starts: holosc up, or holosc start"
        raise RuntimeCommandError(message, [Diagnostic(message, file="holosc", hint=hint)])
    return [
        "ssh",
        "-i", str(keys.key_path(manager.state_dir, project)),
        "-p", str(port),
        *keys.pinned_host_key(pins, P.host_key_alias(project, instance)),
        "-o", "LogLevel=ERROR",
        "-o", "IdentitiesOnly=yes",
        *options,
        *([] if command else ["-t"]),
        "--",
        f"{user}@127.0.0.1",
        *([shlex.join(command)] if command else []),
    ]  # fmt: skip
