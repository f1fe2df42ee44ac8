"""`holosc ps`: instances as systemd sees them (state, PID, uptime, health, ports)."""

from __future__ import annotations

import dataclasses
import time

from holosc.core import layout
from holosc.host import install, qmp
from holosc.host.lifecycle import Units, installed_units
from holosc.host.systemd import Manager


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


PROPS = ("ActiveState", "SubState", "MainPID", "ActiveEnterTimestamp", "NRestarts")


def all_status(manager: Manager, project: str | None = None) -> list[InstanceStatus]:
    """Every instance of `project` (default: of every installed project), from one
    `systemctl show` of all their units."""
    projects = [project] if project else install.installed_projects(manager)
    installed = [installed_units(manager, p) for p in projects]
    shown = manager.show_loaded([u for units in installed for u in units.watched()], PROPS)
    now = time.time()
    return [row for units in installed for row in _rows(manager, units, shown, now)]


def _rows(
    manager: Manager, units: Units, shown: dict[str, dict[str, str]], now: float
) -> list[InstanceStatus]:
    lock = install.read_lock(manager, units.project)
    instances = lock.instances if lock else {}
    words = {"active": "healthy", "activating": "starting", "failed": "unhealthy"}
    health = {  # service: the state of its gate
        layout.gate_service(units.project, gate): words.get(
            shown[gate].get("ActiveState", ""), "unknown"
        )
        for gate in units.gates
    }
    result = []
    for inst in units.instances:
        props = shown[units.unit(inst)]
        service, _ = layout.split_instance(inst)
        pid = int(props.get("MainPID") or 0) or None
        since = props.get("ActiveEnterTimestamp", "").lstrip("@")
        active = props.get("ActiveState") == "active"
        uptime = int(now - int(since)) if active and since.isdigit() else None
        info = instances[inst]
        state = f"{props.get('ActiveState', '?')}/{props.get('SubState', '?')}"
        if state == "active/running":
            # systemd sees QEMU running; QMP tells whether the guest runs (paused by
            # `holosc pause`, or by a full disk with io-error).
            guest = qmp.status(layout.qmp_socket(manager.runtime_dir, units.project, inst))
            if guest not in (None, "running"):
                state = f"active/{guest}"
        result.append(
            InstanceStatus(
                units.project,
                inst,
                service,
                state,
                pid if active else None,
                uptime,
                health.get(service, "-"),
                int(props.get("NRestarts") or 0),
                info.ports,
                info.ssh_port,
            )
        )
    return result


def format_uptime(seconds: int | None) -> str:
    if seconds is None:
        return "-"
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    return f"{h}h{m:02d}m" if h else f"{m}m{s:02d}s"
