"""`holosc ps`: instances as systemd sees them (state, PID, uptime, health, ports)."""

from __future__ import annotations

import dataclasses
import time

from holosc import install, plan
from holosc.lifecycle import installed_units
from holosc.systemd import Manager


@dataclasses.dataclass(frozen=True)
class InstanceStatus:
    project: str
    instance: str
    service: str
    state: str
    pid: int | None
    uptime_s: int | None
    health: str
    restarts: int
    ports: tuple[str, ...]
    ssh_port: int


def project_status(manager: Manager, project: str) -> list[InstanceStatus]:
    units = installed_units(manager, project)
    lock = install.read_lock(manager, project)
    instances = lock.get("instances", {})
    assert isinstance(instances, dict)
    shown = manager.show(
        [*units.instance_units(), *units.gates],
        ["ActiveState", "SubState", "MainPID", "ActiveEnterTimestamp", "NRestarts"],
    )
    now = time.time()
    result = []
    for inst in units.instances:
        props = shown[units.unit(inst)]
        service, _ = plan.split_instance(inst)
        _, gates = units.of_service(service)
        health = "-"
        if gates:
            health = {"active": "healthy", "activating": "starting", "failed": "unhealthy"}.get(
                shown[gates[0]].get("ActiveState", ""), "unknown"
            )
        pid = int(props.get("MainPID") or 0) or None
        since = props.get("ActiveEnterTimestamp", "").lstrip("@")
        active = props.get("ActiveState") == "active"
        uptime = int(now - int(since)) if active and since.isdigit() else None
        info = instances[inst]
        result.append(
            InstanceStatus(
                project,
                inst,
                service,
                f"{props.get('ActiveState', '?')}/{props.get('SubState', '?')}",
                pid if active else None,
                uptime,
                health,
                int(props.get("NRestarts") or 0),
                tuple(info.get("ports", [])),
                int(info.get("ssh_port", 0)),
            )
        )
    return result


def all_status(manager: Manager, project: str | None = None) -> list[InstanceStatus]:
    projects = [project] if project else install.installed_projects(manager)
    return [s for p in projects for s in project_status(manager, p)]


def format_uptime(seconds: int | None) -> str:
    if seconds is None:
        return "-"
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    return f"{h}h{m:02d}m" if h else f"{m}m{s:02d}s"
