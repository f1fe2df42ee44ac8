"""`holosc ssh-config`, `holosc cp` and `holosc top`: the guests over SSH for other tools,
files and process lists, with the project key and each instance's pinned host key (as
`holosc exec`)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from holosc.cli import common, complete, options
from holosc.cli.guest import _instance, _require_running
from holosc.core import layout, names
from holosc.core.lock import LockedInstance
from holosc.errors import RuntimeCommandError
from holosc.host import guestcopy, guestssh, install, lifecycle, run, sshconfig, systemd


def ssh_config(
    targets: Annotated[
        list[str] | None,
        typer.Argument(
            help="Only these services or instances (default: all).",
            autocompletion=complete.services_and_instances,
            show_default=False,
        ),
    ] = None,
    *,
    ansible: Annotated[
        bool, typer.Option("--ansible", help="An Ansible inventory (YAML), a group per service.")
    ] = False,
    file: common.FileOption = None,
    project: options.ProjectOption = None,
    user: options.UserOption = False,
    system: options.SystemOption = False,
) -> None:
    """Print an OpenSSH Host block per instance (`ssh -F <(holosc ssh-config) web-0.shop`)."""
    manager = options.manager(user, system)
    name = options.project_name(project, file)
    for target in targets or []:
        names.check("service or instance", target, "the command line")
    chosen = select(manager, name, targets or [])
    items = sshconfig.accesses(manager.state_dir, name, chosen, None)
    missing = [i.instance for i in items if not i.known_hosts.is_file()]
    if missing:
        print(
            f"holosc: warning: no pinned host key yet for {', '.join(missing)} "
            "(written when the instance starts): ssh refuses them until then",
            file=sys.stderr,
        )
    print(sshconfig.ansible_inventory(items) if ansible else sshconfig.ssh_config(items), end="")


def select(manager: systemd.Manager, project: str, wanted: list[str]) -> dict[str, LockedInstance]:
    """The installed instances of `project` named, or of the services named (all when
    none is), in the lock's order.

    :raises RuntimeCommandError: when the project is not installed or a name is unknown.
    """
    lock = install.read_lock(manager, project)
    if lock is None:
        raise lifecycle.error(
            f"project '{project}' is not installed", "run holosc up in its directory first"
        )
    found = {
        inst: info
        for inst, info in lock.instances.items()
        if not wanted or inst in wanted or info.service in wanted
    }
    known = {*lock.instances, *(i.service for i in lock.instances.values())}
    unknown = [w for w in wanted if w not in known]
    if unknown:
        raise lifecycle.error(
            f"no such service or instance in project '{project}': {', '.join(unknown)}",
            f"instances: {', '.join(lock.instances)}",
        )
    return found


def cp(
    source: Annotated[
        str,
        typer.Argument(
            help="INSTANCE:PATH or a host path.", autocompletion=complete.instance_paths
        ),
    ],
    dest: Annotated[
        str,
        typer.Argument(
            help="INSTANCE:PATH or a host path.", autocompletion=complete.instance_paths
        ),
    ],
    *,
    file: common.FileOption = None,
    project: options.ProjectOption = None,
    user: options.UserOption = False,
    system: options.SystemOption = False,
) -> None:
    """Copy files or directories between a guest and this host
    (`holosc cp web-0:/var/log/app.log .`).

    Over SSH with the project key and the pinned host key, as the instance's login user.
    A destination that is an existing directory receives the source under its own name;
    otherwise the source is copied as the destination (as `docker cp`). A host path with
    a colon before any slash is written `./web-0:x`.
    """
    manager = options.manager(user, system)
    name = options.project_name(project, file)
    src, dst = guestcopy.parse(source), guestcopy.parse(dest)
    if (src.instance is None) == (dst.instance is None):
        raise typer.BadParameter(
            "exactly one of SOURCE and DEST must be INSTANCE:PATH (e.g. web-0:/tmp)"
        )
    instance = src.instance or dst.instance
    assert instance is not None
    address = guestssh.target(_instance(manager, name, instance))
    _require_running(manager, name, instance)

    def ssh(command: list[str]) -> list[str]:
        extra = ("-o", "BatchMode=yes", "-o", "ServerAliveInterval=15")
        return guestssh.ssh_argv(manager, name, instance, address, command, extra)

    if src.instance is None:
        count = guestcopy.upload(ssh, Path(src.path), dst.path)
        where = f"{instance}:{dst.path}"
    else:
        count = guestcopy.download(ssh, src.path, Path(dst.path))
        where = dst.path
    common.note(f"copied {_size(count)} to {where}")


def _size(count: int) -> str:
    """Bytes as `docker cp` reports them (1000-based)."""
    value = float(count)
    for unit in ("kB", "MB", "GB"):
        value /= 1000
        if value < 1000 or unit == "GB":
            return f"{count}B" if count < 1000 else f"{value:.3g}{unit}"
    raise AssertionError("unreachable")


def top(
    targets: Annotated[
        list[str] | None,
        typer.Argument(
            help="Services or instances (default: all).",
            autocompletion=complete.services_and_instances,
            show_default=False,
        ),
    ] = None,
    *,
    file: common.FileOption = None,
    project: options.ProjectOption = None,
    user: options.UserOption = False,
    system: options.SystemOption = False,
) -> None:
    """The processes running in each guest (`ps -ef` over SSH with the pinned host key),
    as `docker compose top`."""
    manager = options.manager(user, system)
    name = options.project_name(project, file)
    for target in targets or []:
        names.check("service or instance", target, "the command line")
    chosen = select(manager, name, targets or [])
    running = systemd_running(manager, name, list(chosen))
    failed = []
    for instance, info in chosen.items():
        if instance not in running:
            continue
        argv = guestssh.ssh_argv(
            manager, name, instance, guestssh.target(info), ["ps", "-ef"],
            ("-o", "BatchMode=yes", "-o", "ConnectTimeout=20"),
        )  # fmt: skip
        result = run.run(argv, check=False, timeout=60, hint="install openssh-client")
        print(instance)
        if result.returncode != 0:
            failed.append(instance)
            print(f"holosc: {instance}: {result.stderr.strip() or 'ps failed'}", file=sys.stderr)
        print(result.stdout, end="\n" if result.stdout.endswith("\n") else "\n\n")
    if failed:
        raise lifecycle.error(f"no process list from {', '.join(failed)}")


def systemd_running(manager: systemd.Manager, project: str, instances: list[str]) -> set[str]:
    """The instances whose unit is active (QEMU runs); all of them when there is no
    manager to ask (a guest started by hand: SSH decides)."""
    units = {layout.instance_unit(project, *layout.split_instance(i)): i for i in instances}
    try:
        shown = manager.show(list(units), ["ActiveState"])
    except RuntimeCommandError:
        return set(instances)
    return {units[u] for u, p in shown.items() if p.get("ActiveState") == "active"}
