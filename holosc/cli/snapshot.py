"""`holosc snapshot save | restore | list | rm`: internal qcow2 snapshots of instances'
disks, live for running guests (docs/snapshots.md)."""

from __future__ import annotations

import dataclasses
import datetime
import json
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated, NamedTuple

import typer

from holosc.cli import common, complete, options
from holosc.cli.images import human_size
from holosc.core import names
from holosc.core.lock import Lock
from holosc.host import install, lifecycle, snapshots, systemd, targets
from holosc.host.project_lock import project_lock

app = typer.Typer(
    name="snapshot",
    help="Snapshots of instances' disks (running ones live): save, restore, list, rm.",
    no_args_is_help=True,
    add_completion=False,
    rich_markup_mode=None,
)

NameArgument = Annotated[
    str,
    typer.Argument(
        metavar="NAME", help="The snapshot's name (a DNS label).", autocompletion=complete.snapshots
    ),
]
TargetsArgument = Annotated[
    list[str] | None,
    typer.Argument(
        metavar="[SERVICE|INSTANCE]...",
        help="Services or instances (default: all).",
        autocompletion=complete.services_and_instances,
        show_default=False,
    ),
]


class Scope(NamedTuple):
    manager: systemd.Manager
    units: lifecycle.Units
    lock: Lock
    instances: list[str]


@contextmanager
def _scope(
    verb: str,
    chosen: list[str] | None,
    file: common.FileOption,
    project: str | None,
    user: bool,
    system: bool,
) -> Iterator[Scope]:
    manager = options.manager(user, system)
    name = options.project_name(project, file)
    manager.require()
    with project_lock(manager, name, f"snapshot {verb}", common.note):
        units = lifecycle.installed_units(manager, name)
        lock = install.read_lock(manager, name)
        assert lock is not None  # installed_units checked it
        yield Scope(manager, units, lock, targets.instances(units, chosen or []))


@app.command("save")
def save(
    name: NameArgument,
    chosen: TargetsArgument = None,
    *,
    no_volumes: Annotated[
        bool, typer.Option("--no-volumes", help="Leave the named volumes out (root disks only).")
    ] = False,
    file: common.FileOption = None,
    project: options.ProjectOption = None,
    user: options.UserOption = False,
    system: options.SystemOption = False,
) -> None:
    """Snapshot instances' disks (root and named volumes): running ones live, all disks of
    one instance at the same instant; stopped ones offline."""
    names.check("snapshot", name, "the command line")
    with _scope("save", chosen, file, project, user, system) as s:
        snapshots.save(
            s.manager, s.units, s.lock, s.instances, name, volumes=not no_volumes, say=print
        )


@app.command("restore")
def restore(
    name: NameArgument,
    chosen: TargetsArgument = None,
    *,
    file: common.FileOption = None,
    project: options.ProjectOption = None,
    user: options.UserOption = False,
    system: options.SystemOption = False,
) -> None:
    """Stop the instances that have the snapshot gracefully, switch their disks to it and
    start them; their dependents keep running."""
    names.check("snapshot", name, "the command line")
    with _scope("restore", chosen, file, project, user, system) as s:
        snapshots.restore(s.manager, s.units, s.lock, s.instances, name, print)


@app.command("list")
def list_(
    chosen: TargetsArgument = None,
    *,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
    file: common.FileOption = None,
    project: options.ProjectOption = None,
    user: options.UserOption = False,
    system: options.SystemOption = False,
) -> None:
    """Snapshots by instance: when taken, which disks, and the size only each keeps (what
    rm frees)."""
    with _scope("list", chosen, file, project, user, system) as s:
        found = snapshots.listing(s.manager, s.lock, s.instances)
    if as_json:
        print(json.dumps([dataclasses.asdict(f) for f in found], indent=2))
        return
    rows = [("NAME", "INSTANCE", "CREATED", "DISKS", "SIZE")]
    for snap in found:
        created = datetime.datetime.fromtimestamp(snap.created, datetime.UTC)
        size = "?" if snap.size is None else human_size(snap.size)
        rows.append(
            (
                snap.name,
                snap.instance,
                created.strftime("%Y-%m-%dT%H:%M:%SZ"),
                ",".join(snap.disks),
                size,
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        print("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())


@app.command("rm")
def remove(
    name: NameArgument,
    chosen: TargetsArgument = None,
    *,
    file: common.FileOption = None,
    project: options.ProjectOption = None,
    user: options.UserOption = False,
    system: options.SystemOption = False,
) -> None:
    """Delete a snapshot from the instances' disks (running ones too)."""
    names.check("snapshot", name, "the command line")
    with _scope("rm", chosen, file, project, user, system) as s:
        done = snapshots.remove(s.manager, s.units, s.lock, s.instances, name, print)
    if not done:
        raise lifecycle.error(f"no snapshot '{name}'", "holosc snapshot list shows them")
