"""`holosc exec` (SSH with the project key) and `holosc console` (the serial console).

exec accepts only the instance's pinned host key (written by holos-seed at its start);
the console is a Unix socket in the manager's runtime directory, so no key is involved.
"""

from __future__ import annotations

import os
import select
import socket
import sys
import termios
import time
import tty
from pathlib import Path
from typing import Annotated

import typer

from holosc.cli import common, complete, options, streams
from holosc.core import layout, names
from holosc.core.lock import LockedInstance
from holosc.errors import RuntimeCommandError
from holosc.host import guestssh, install, lifecycle, systemd

ESCAPE = b"\x1d"  # Ctrl-]


def _instance(manager: systemd.Manager, project: str, instance: str) -> LockedInstance:
    names.check_instance(instance, "the command line")
    lock = install.read_lock(manager, project)
    if lock is None:
        raise lifecycle.error(f"project '{project}' is not installed")
    if instance not in lock.instances:
        raise lifecycle.error(
            f"no instance '{instance}' in project '{project}'",
            f"instances: {', '.join(sorted(lock.instances))}",
        )
    return lock.instances[instance]


def _require_running(manager: systemd.Manager, project: str, instance: str) -> None:
    """Fail at once for an instance whose unit is not running (instead of waiting --wait
    seconds for an SSH banner that cannot come)."""
    unit = layout.instance_unit(project, *layout.split_instance(instance))
    try:
        props = manager.show([unit], ["ActiveState", "SubState"])[unit]
    except RuntimeCommandError:
        return  # no manager to ask (a guest started by hand): the SSH wait decides
    if props.get("ActiveState") not in ("active", "activating", "reloading"):
        service = layout.split_instance(instance)[0]
        raise lifecycle.error(
            f"instance '{instance}' is not running "
            f"({props.get('ActiveState', '?')}/{props.get('SubState', '?')})",
            f"holosc start {service}",
        )


def _wait_for_ssh(port: int, wait: float) -> bool:
    """Poll for the SSH banner: a fresh VM's forwarded port accepts before sshd runs."""
    deadline = time.monotonic() + wait
    delay = 0.2
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=2) as sock:
                sock.settimeout(2)
                if sock.recv(4).startswith(b"SSH-"):
                    return True
        except OSError:
            pass
        if time.monotonic() >= deadline:
            return False
        time.sleep(min(delay, max(0.0, deadline - time.monotonic())))
        delay = min(delay * 2, 3.2)


def exec_(
    instance: Annotated[
        str, typer.Argument(help="Instance, e.g. web-0.", autocompletion=complete.instances)
    ],
    command: Annotated[list[str] | None, typer.Argument(help="Command (default: a shell).")] = None,
    *,
    login: Annotated[
        str | None,
        typer.Option("--login", "-l", help="Login user in the guest (default: the image's)."),
    ] = None,
    login_u: Annotated[
        str | None, typer.Option("-u", hidden=True, help="Refused: says to use --login.")
    ] = None,
    wait: Annotated[float, typer.Option("--wait", "-w", help="Seconds to wait for sshd.")] = 60,
    file: common.FileOption = None,
    project: options.ProjectOption = None,
    user: options.UserOption = False,
    system: options.SystemOption = False,
) -> None:
    """SSH into an instance with the project key (`holosc exec web-0 -- hostname`;
    `--login NAME` logs in as NAME, `--user` is the user manager as in every command)."""
    if login_u is not None:
        # compose's `exec -u` is the login user; here --user is the scope everywhere.
        raise typer.BadParameter(
            f"use --login {login_u} (or -l) for the login user; --user selects your own "
            "systemd manager, as in every holosc command",
            param_hint="-u",
        )
    manager = options.manager(user, system)
    name = options.project_name(project, file)
    info = _instance(manager, name, instance)
    _require_running(manager, name, instance)
    if command and command[0] == "--":  # options end at the instance, like compose exec
        command = command[1:]
    address = guestssh.target(info, login)
    if wait > 0 and not _wait_for_ssh(address[0], wait):
        print(
            f"holosc: {instance}: no SSH banner on 127.0.0.1:{address[0]} after {wait:g} s; "
            "trying anyway",
            file=sys.stderr,
        )
    argv = guestssh.ssh_argv(manager, name, instance, address, command or [])
    common.replace_process(argv, "openssh-client")


def console(
    instance: Annotated[
        str, typer.Argument(help="Instance, e.g. web-0.", autocompletion=complete.instances)
    ],
    *,
    file: common.FileOption = None,
    project: options.ProjectOption = None,
    user: options.UserOption = False,
    system: options.SystemOption = False,
) -> None:
    """Attach to an instance's serial console; Ctrl-] detaches. The console is also logged
    to the instance's console.log (see `holosc logs --console`)."""
    manager = options.manager(user, system)
    name = options.project_name(project, file)
    _instance(manager, name, instance)
    _require_running(manager, name, instance)
    path = layout.serial_socket(manager.runtime_dir, name, instance)
    try:
        sock = connect_unix(path)
    except OSError as exc:  # QEMU starting or stopping right now
        raise lifecycle.error(
            f"cannot open {instance}'s serial console {path}: {exc.strerror}",
            f"holosc ps -p {name} shows whether it runs",
        ) from exc
    print("Connected to the serial console. Press Ctrl-] to detach.", file=sys.stderr)
    _pump(sock)


def connect_unix(path: Path) -> socket.socket:
    """Connect to a Unix socket whose path may be longer than an address holds (107
    bytes): through /proc/self/fd of its directory, which keeps the address short."""
    directory = os.open(path.parent, os.O_PATH | os.O_DIRECTORY)
    sock = socket.socket(socket.AF_UNIX)
    try:
        sock.connect(f"/proc/self/fd/{directory}/{path.name}")
    except OSError:
        sock.close()
        raise
    finally:
        os.close(directory)
    return sock


def _pump(sock: socket.socket) -> None:
    stdin = sys.stdin.fileno()
    saved = termios.tcgetattr(stdin) if os.isatty(stdin) else None
    try:
        if saved is not None:
            tty.setraw(stdin)
        sock.sendall(b"\r")
        while True:
            ready, _, _ = select.select([sock, stdin], [], [])
            if sock in ready:
                data = sock.recv(4096)
                if not data:
                    break
                os.write(sys.stdout.fileno(), data)
            if stdin in ready:
                data = os.read(stdin, 1024)
                if not data or ESCAPE in data:
                    break
                sock.sendall(data)
    finally:
        if saved is not None:
            termios.tcsetattr(stdin, termios.TCSADRAIN, saved)
        sock.close()
    streams.control("\r\ndetached\n")  # the terminal may still be in raw mode
