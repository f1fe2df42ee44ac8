"""`holosc run SERVICE [-- CMD]`: a one-off instance of a service, as `docker compose run`.

The one-off is the service's next replica index that nothing uses (web-2 beside web-0 and
web-1): compiled from the project as holos.yaml says now, with one more replica, keeping
every installed instance's addresses and ports (the installed lock). Only its own files
are installed (launch script and seed texts below %E/holos/<p>/<instance>/): the
service's template unit runs it, on its own root disk and its own ports, and the
project's lock, peer lists and manifest stay as they are, so `ps`, `up` and the running
guests never see it. `--rm` removes its unit's state, disk, runtime and files after.
"""

from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path, PurePosixPath

from holosc.core import layout
from holosc.core.lock import LOCK_FILE, Lock, LockedInstance
from holosc.core.model import Project
from holosc.emit.write import write_atomic
from holosc.host import install, lifecycle
from holosc.host.systemd import Manager

MAX_TRIES = 16  # indexes past the replicas tried for a free one


@dataclasses.dataclass(frozen=True)
class OneOff:
    project: str
    instance: str
    unit: str
    info: LockedInstance


def free_index(manager: Manager, project: Project, service: str) -> int:
    """The first index past the service's replicas with no disk and no running unit.

    :raises RuntimeCommandError: when the service does not exist or none is free.
    """
    found = [s for s in project.services if s.name == service]
    if not found:
        raise lifecycle.error(
            f"project '{project.name}' has no service '{service}'",
            f"services: {', '.join(s.name for s in project.services)}",
        )
    lock = install.read_lock(manager, project.name)
    taken = set(lock.instances) if lock else set()
    start = found[0].replicas
    units = [
        layout.instance_unit(project.name, service, i) for i in range(start, start + MAX_TRIES)
    ]
    states = manager.show(units, ["ActiveState"])
    for offset, unit in enumerate(units):
        inst = layout.instance_name(service, start + offset)
        state_dir = layout.instance_state(manager.state_dir, project.name, inst)
        if (
            inst not in taken
            and not state_dir.exists()
            and states[unit].get("ActiveState")
            in (
                "inactive",
                "failed",
                "",
            )
        ):
            return start + offset
    raise lifecycle.error(
        f"no free index for a one-off {service} (tried {start} to {start + MAX_TRIES - 1})",
        "remove earlier one-offs: holosc down, or run with --rm",
    )


def with_replicas(project: Project, service: str, replicas: int) -> Project:
    services = tuple(
        dataclasses.replace(s, replicas=replicas) if s.name == service else s
        for s in project.services
    )
    return dataclasses.replace(project, services=services)


def install_oneoff(
    manager: Manager,
    project: str,
    instance: str,
    files: dict[str, tuple[bytes, int]],
    lock_text: bytes,
) -> OneOff:
    """Write the one-off's own files (and nothing of the project's).

    :raises RuntimeCommandError: when the compiled lock lacks the instance.
    """
    lock = Lock.from_json(lock_text, LOCK_FILE)
    if instance not in lock.instances:
        raise lifecycle.error(f"the compiled project has no instance {instance}")
    target = manager.artifacts(project) / instance
    for name, (data, mode) in files.items():
        write_atomic(target / name, data, mode)
    service, index = layout.split_instance(instance)
    return OneOff(
        project, instance, layout.instance_unit(project, service, index), lock.instances[instance]
    )


def instance_files(
    output_files: dict[PurePosixPath, tuple[bytes, int]], project: str, instance: str
) -> dict[str, tuple[bytes, int]]:
    """The compiled files below <p>/<instance>/, by name."""
    prefix = PurePosixPath(project, instance)
    return {path.name: file for path, file in output_files.items() if path.parent == prefix}


def remove(manager: Manager, oneoff: OneOff) -> None:
    """Stop the one-off (only it) and remove every trace: unit state, disk, runtime
    directory, its installed files."""
    manager.ctl("stop", "--job-mode=ignore-dependencies", units=[oneoff.unit], check=False)
    manager.ctl("reset-failed", units=[oneoff.unit], check=False)
    for path in (
        layout.instance_state(manager.state_dir, oneoff.project, oneoff.instance),
        layout.instance_runtime(manager.runtime_dir, oneoff.project, oneoff.instance),
        manager.artifacts(oneoff.project) / oneoff.instance,
    ):
        shutil.rmtree(Path(path), ignore_errors=True)
