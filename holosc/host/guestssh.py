"""SSH from this host into a running instance: the one way `holosc exec` and `holosc up`
(peer names) reach a guest. The health helper, which never imports holosc, builds the
same options (runtime-helpers/health.py).

The guest answers on its forwarded port of 127.0.0.1; ssh accepts only the host key that
holos-seed pinned for it when it started, and logs in with the project key.
"""

from __future__ import annotations

import socket
import time

from holosc.core import layout
from holosc.core.lock import LockedInstance
from holosc.core.render.escape import shell_command
from holosc.core.validate.checker import USER
from holosc.errors import Diagnostic, RuntimeCommandError
from holosc.host import keys
from holosc.host.systemd import Manager


def target(info: LockedInstance, login: str | None = None) -> tuple[int, str]:
    """The forwarded port and login user, refused unless each is what it must be: the lock
    file is read from disk and --user from the command line, and both reach ssh's argv.

    :raises RuntimeCommandError: for a port or user name that is not one.
    """
    port = info.ssh_port
    if not 0 < port < 65536:
        raise _error(f"the installed lock file has no valid SSH port ({port!r})")
    user = login or info.user
    if not USER.fullmatch(user):
        raise _error(f"{user!r} is not a valid user name", "e.g. --user ubuntu")
    return port, user


def ssh_argv(
    manager: Manager,
    project: str,
    instance: str,
    address: tuple[int, str],
    command: list[str],
    options: tuple[str, ...] = (),
) -> list[str]:
    """ssh to `instance` at `address` (target()) running COMMAND (argv; none: a shell).

    `--` ends ssh's options (ssh parses options after the destination otherwise), and each
    word of COMMAND is quoted for the remote shell, which ssh joins with spaces: the guest
    runs exactly this argv.

    :raises RuntimeCommandError: when the instance has no pinned host key yet.
    """
    pins = layout.known_hosts(manager.state_dir, project, instance)
    if not pins.is_file():
        raise _error(
            f"{instance} has no pinned host key ({pins} is missing)",
            "the instance writes it when it starts: holosc up, or holosc start",
        )
    port, user = address
    return [
        "ssh",
        "-i", str(keys.key_path(manager.state_dir, project)),
        "-p", str(port),
        *keys.pinned_host_key(pins, layout.host_key_alias(project, instance)),
        "-o", "LogLevel=ERROR",
        "-o", "IdentitiesOnly=yes",
        *options,
        *([] if command else ["-t"]),
        "--",
        f"{user}@127.0.0.1",
        *([shell_command(command)] if command else []),
    ]  # fmt: skip


def greets(port: int, timeout: float) -> bool:
    """Whether an SSH server greets on 127.0.0.1:`port` within `timeout` seconds. QEMU's
    forward accepts every connection, also while no sshd listens in the guest, and then
    closes it (or, with a guest network that is down, says nothing)."""
    deadline = time.monotonic() + timeout
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
            greeting = b""
            while len(greeting) < 4:
                sock.settimeout(max(deadline - time.monotonic(), 0.01))
                if not (data := sock.recv(4 - len(greeting))):
                    break
                greeting += data
            return greeting == b"SSH-"
    except OSError:
        return False


def _error(message: str, hint: str | None = None) -> RuntimeCommandError:
    return RuntimeCommandError(message, [Diagnostic(message, file="holosc", hint=hint)])
