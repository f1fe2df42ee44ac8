"""A synchronous QMP client for the commands that act on a running guest (`ps`, `pause`,
`unpause`, `snapshot`): connect, negotiate, run commands in order, disconnect.

QEMU's QMP socket takes one client at a time; every read has a timeout, so a socket held
by someone else (holos-qmp-stop during a stop) is an error after `timeout` seconds, never
a hang. Standard library only: these commands must start fast.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

SOCKET_BYTES = 107  # what qemu.qmp and Python connect to (QEMU binds up to 108)


class QmpError(Exception):
    """QEMU did not answer, or answered a command with an error."""


class Session:
    """One QMP connection after capability negotiation."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.reader = sock.makefile("rb")

    def execute(self, command: str, arguments: dict[str, Any] | None = None) -> Any:
        """The command's `return` value; events that arrive meanwhile are skipped.

        :raises QmpError: on an error reply, a timeout or a closed connection.
        """
        request: dict[str, Any] = {"execute": command}
        if arguments is not None:
            request["arguments"] = arguments
        try:
            self.sock.sendall(json.dumps(request).encode() + b"\n")
            while True:
                line = self.reader.readline()
                if not line:
                    raise QmpError(f"{command}: QEMU closed the QMP connection")
                reply = json.loads(line)
                if "return" in reply:
                    return reply["return"]
                if "error" in reply:
                    error = reply["error"]
                    raise QmpError(f"{command}: {error.get('desc', error)}")
        except (OSError, ValueError) as exc:
            raise QmpError(f"{command}: {exc}") from exc


@contextlib.contextmanager
def session(path: Path, timeout: float = 5.0) -> Iterator[Session]:
    """A negotiated QMP session on the socket at `path`.

    :raises QmpError: when QEMU does not answer there within `timeout` seconds.
    """
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(timeout)
        try:
            with _short(path) as address:
                sock.connect(address)
            greeting = b""
            while not greeting.endswith(b"\n"):  # one line; events come only later
                chunk = sock.recv(4096)
                if not chunk:
                    break
                greeting += chunk
        except OSError as exc:
            raise QmpError(f"cannot talk to QEMU at {path}: {exc}") from exc
        if not greeting.endswith(b"\n"):
            raise QmpError(f"cannot talk to QEMU at {path}: no QMP greeting")
        qmp = Session(sock)
        try:
            qmp.execute("qmp_capabilities")
            yield qmp
        finally:
            qmp.reader.close()  # the socket closes with its last file: QEMU takes the next


@contextlib.contextmanager
def _short(path: Path) -> Iterator[str]:
    """An address for `path` that fits a Unix socket address: through the directory's
    file descriptor when the path is too long (a long project or service name)."""
    if len(os.fsencode(path)) <= SOCKET_BYTES:
        yield str(path)
        return
    fd = os.open(path.parent, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        yield f"/proc/self/fd/{fd}/{path.name}"
    finally:
        os.close(fd)


def status(path: Path, timeout: float = 2.0) -> str | None:
    """`query-status` ("running", "paused", "io-error", ...), or None when QEMU does not
    answer in time (a stop in progress holds the one QMP connection)."""
    try:
        with session(path, timeout) as qmp:
            result = qmp.execute("query-status").get("status")
    except (QmpError, AttributeError):
        return None
    return result if isinstance(result, str) else None
