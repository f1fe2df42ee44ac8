"""Snapshots of instances: internal qcow2 snapshots of each instance's disks.

A snapshot NAME of instance INST is the internal snapshot tagged `holos/INST/NAME` in the
instance's root disk (its state directory) and in each named volume it writes, unless
volumes were left out. Internal snapshots stay inside those files: the image cache below
the overlay is never written, and `down` takes them with the disks (and deletes the
volumes' tags, as the volumes stay).

A running instance is snapshotted by QEMU in one QMP `transaction` of
`blockdev-snapshot-internal-sync` actions: every disk at the same instant, the guest
running on (crash-consistent, as after a power cut; docs/snapshots.md). A stopped one
by `qemu-img snapshot`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from pathlib import Path

from holosc.core import layout
from holosc.core.lock import Lock
from holosc.host import disktags, qmp
from holosc.host.disktags import tags
from holosc.host.lifecycle import Units, error
from holosc.host.systemd import Manager

Say = Callable[[str], None]
PREFIX = layout.SNAPSHOT_PREFIX


tag = layout.snapshot_tag


@dataclasses.dataclass(frozen=True)
class Disk:
    label: str  # "root" or the volume's name
    device: str  # QEMU's drive id (launch.sh): root, vol-<name>
    path: Path


@dataclasses.dataclass(frozen=True)
class Snapshot:
    name: str
    instance: str
    created: int  # seconds since the epoch
    disks: tuple[str, ...]  # labels of the disks that hold it
    size: int | None  # bytes only it keeps (what rm frees), None when unknown


def disks(manager: Manager, lock: Lock, instance: str, *, volumes: bool = True) -> list[Disk]:
    """The instance's writable qcow2 disks: its root disk, then the named volumes it
    writes (with `volumes`)."""
    project = lock.project
    found = [Disk("root", "root", layout.root_disk(manager.state_dir, project, instance))]
    if volumes:
        found += [
            Disk(v, f"vol-{v}", layout.volume_disk(manager.state_dir, project, v))
            for v in lock.instances[instance].volumes
        ]
    return found


def listing(manager: Manager, lock: Lock, instances: Sequence[str]) -> list[Snapshot]:
    """The snapshots of `instances`, in instance order, then by creation time."""
    from holosc.host import snapsize

    found = []
    for inst in instances:
        prefix = tag(inst, "")
        held: dict[str, list[Disk]] = {}
        created: dict[str, int] = {}
        all_disks = disks(manager, lock, inst)
        per_disk = {disk: tags(disk.path) for disk in all_disks}
        for disk, on_disk in per_disk.items():
            for name, when in on_disk.items():
                if name.startswith(prefix):
                    short = name[len(prefix) :]
                    held.setdefault(short, []).append(disk)
                    created.setdefault(short, when)
        for name in sorted(held, key=lambda n: (created[n], n)):
            sizes = [snapsize.exclusive(d.path, tag(inst, name)) for d in held[name]]
            size = None if None in sizes else sum(s for s in sizes if s is not None)
            found.append(
                Snapshot(name, inst, created[name], tuple(d.label for d in held[name]), size)
            )
    return found


def running(manager: Manager, units: Units, instances: Sequence[str]) -> dict[str, bool]:
    """Whether each instance runs; one that is starting or stopping is an error.

    :raises RuntimeCommandError: naming every instance in between.
    """
    states = manager.show(units.instance_units(instances), ["ActiveState"])
    state = {i: states[units.unit(i)].get("ActiveState", "") for i in instances}
    between = [i for i, s in state.items() if s not in ("active", "inactive", "failed")]
    if between:
        raise error(
            f"starting or stopping: {', '.join(between)}", "try again once it is up or down"
        )
    return {i: s == "active" for i, s in state.items()}


def save(
    manager: Manager,
    units: Units,
    lock: Lock,
    instances: Sequence[str],
    name: str,
    *,
    volumes: bool,
    say: Say,
) -> None:
    """Snapshot every instance of `instances` as `name`; none is touched when one already
    has a snapshot of that name or has no disk yet.

    :raises RuntimeCommandError: for those, or when QEMU or qemu-img fails.
    """
    plan = {inst: disks(manager, lock, inst, volumes=volumes) for inst in instances}
    problems = []
    for inst, chosen in plan.items():
        if not chosen[0].path.exists():
            problems.append(f"{inst} has no disk yet (it never started)")
        elif any(tag(inst, name) in tags(d.path) for d in chosen):
            problems.append(f"{inst} already has a snapshot '{name}'")
    if problems:
        raise error("; ".join(problems), f"holosc snapshot rm {name}, or choose another name")
    live = running(manager, units, instances)
    for inst, chosen in plan.items():
        label = tag(inst, name)
        if live[inst]:
            actions = [
                {
                    "type": "blockdev-snapshot-internal-sync",
                    "data": {"device": d.device, "name": label},
                }
                for d in chosen
            ]
            _qmp(manager, lock.project, inst, "transaction", {"actions": actions})
        else:
            for d in chosen:
                disktags.snapshot("-c", label, d.path)
        how = "live" if live[inst] else "offline"
        say(f"{inst}: saved snapshot {name} ({how}: {', '.join(d.label for d in chosen)})")


def remove(
    manager: Manager, units: Units, lock: Lock, instances: Sequence[str], name: str, say: Say
) -> list[str]:
    """Delete snapshot `name` of these instances; returns the instances that had it."""
    live = running(manager, units, instances)
    done = []
    for inst in instances:
        label = tag(inst, name)
        holding = [d for d in disks(manager, lock, inst) if label in tags(d.path)]
        for d in holding:
            if live[inst]:
                _qmp(
                    manager,
                    lock.project,
                    inst,
                    "blockdev-snapshot-delete-internal-sync",
                    {"device": d.device, "name": label},
                )
            else:
                disktags.snapshot("-d", label, d.path)
        if holding:
            done.append(inst)
            say(f"{inst}: removed snapshot {name}")
    return done


def revert(manager: Manager, lock: Lock, instance: str, name: str) -> list[str]:
    """Switch a stopped instance's disks to snapshot `name` (the snapshot stays); returns
    the labels of the disks switched. Disks the snapshot left out keep their data."""
    label = tag(instance, name)
    holding = [d for d in disks(manager, lock, instance) if label in tags(d.path)]
    for d in holding:
        disktags.snapshot("-a", label, d.path)
    return [d.label for d in holding]


def _qmp(
    manager: Manager, project: str, instance: str, command: str, args: dict[str, object]
) -> None:
    socket = layout.qmp_socket(manager.runtime_dir, project, instance)
    try:
        with qmp.session(socket, timeout=30) as session:
            session.execute(command, args)
    except qmp.QmpError as exc:
        raise error(f"{instance}: {exc}") from exc


def restore(
    manager: Manager, units: Units, lock: Lock, instances: Sequence[str], name: str, say: Say
) -> list[str]:
    """Stop the instances of `instances` that have snapshot `name` (and their services'
    health gates) gracefully, switch their disks to it, and start them again; returns
    when their gates passed. Nothing else is stopped or started: dependents keep running.

    :raises RuntimeCommandError: when none of them has it.
    """
    from holosc.host import lifecycle

    chosen = [i for i in instances if tag(i, name) in tags(disks(manager, lock, i)[0].path)]
    if not chosen:
        raise error(
            f"no snapshot '{name}' of {', '.join(instances)}", "holosc snapshot list shows them"
        )
    running(manager, units, chosen)  # none may be starting or stopping
    services = {layout.split_instance(i)[0] for i in chosen}
    gates = [g for s in sorted(services) for g in units.of_service(s)[1]]
    names = [*units.instance_units(chosen), *gates]
    lifecycle.stop_units(manager, lock.project, names, say)
    alive = lifecycle.wait_stopped(manager, names)
    if alive:
        raise error(f"still running after stop: {' '.join(alive)}; nothing restored")
    for inst in chosen:
        switched = revert(manager, lock, inst, name)
        say(f"{inst}: disks at snapshot {name} ({', '.join(switched)})")
    lifecycle.start_units(manager, units, names, say)
    return chosen
