"""restart, kill, wait, port and ls: compose's commands over the installed units.

Each acts on exactly the instances named (their services' instances, or all), never on
their dependents, as compose does: a restarted database leaves its clients running.
"""

from __future__ import annotations

import dataclasses
import os
import signal
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from holosc.core import layout
from holosc.core.lock import LockedInstance
from holosc.errors import RuntimeCommandError
from holosc.host import install, lifecycle
from holosc.host.lifecycle import Say, Units
from holosc.host.systemd import Manager

ACTIVE = ("active", "activating", "reloading", "deactivating")
SSH_GUEST_PORT = 22


def gates_of(units: Units, instances: Sequence[str]) -> list[str]:
    services = {layout.split_instance(i)[0] for i in instances}
    return [g for g in units.gates if layout.gate_service(units.project, g) in services]


def restart(manager: Manager, units: Units, instances: list[str], say: Say) -> None:
    """Stop the instances gracefully, start them again in dependency order, then re-check
    their services' health gates. Dependents keep running throughout.

    :raises UnitFailedError: when one does not start or its gate does not pass again.
    """
    names_ = units.instance_units(instances)
    began = time.monotonic()
    lifecycle.stop_units(manager, units.project, names_, say)
    lifecycle.start_units(manager, units, names_, say)
    for gate in gates_of(units, instances):
        say(f"{units.label(gate)}: re-checking health")
        manager.ctl("restart", "--job-mode=ignore-dependencies", units=[gate])
    say(f"restarted {' '.join(instances)} in {time.monotonic() - began:.1f} s")


# Signals after which QEMU is gone: the unit is then stopped, so that systemd does not
# restart it (Restart=on-abnormal), as `docker compose kill` leaves containers exited.
FATAL = {"SIGKILL", "SIGTERM", "SIGINT", "SIGHUP", "SIGQUIT", "SIGABRT"}


def signal_name(text: str) -> str:
    """`KILL`, `sigkill`, `SIGKILL` or `9` as SIGKILL.

    :raises ValueError: for a name or number that is no signal.
    """
    upper = text.upper()
    if upper.isdigit():
        return signal.Signals(int(upper)).name
    name = upper if upper.startswith("SIG") else f"SIG{upper}"
    if name not in signal.Signals.__members__:
        raise ValueError(f"{text!r} is not a signal")
    return name


def kill(manager: Manager, units: Units, instances: list[str], sig: str, say: Say) -> None:
    """Send `sig` to QEMU of each instance (the unit's main process only); after a fatal
    signal, stop the unit so that it stays down."""
    names_ = units.instance_units(instances)
    states = manager.show(names_, ["ActiveState", "MainPID"])
    running = [u for u in names_ if states[u].get("ActiveState") in ACTIVE]
    if not running:
        say("nothing to kill: none of them is running")
        return
    manager.ctl("kill", "--kill-whom=main", f"--signal={sig}", units=running)
    if sig in FATAL:
        _wait_gone(manager, running, {u: states[u].get("MainPID", "") for u in running})
        manager.ctl("stop", "--job-mode=ignore-dependencies", units=running, check=False)
        manager.ctl("reset-failed", units=running, check=False)
    for unit in running:
        say(f"{units.label(unit)}: killed ({sig})")


def _wait_gone(manager: Manager, unit_names: list[str], pids: dict[str, str]) -> None:
    """Until each unit's QEMU has exited (its MainPID changed or the unit left active),
    at most 10 s: the stop that follows then finds nothing to shut down gracefully."""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        shown = manager.show(unit_names, ["ActiveState", "MainPID"])
        if all(
            p.get("MainPID") != pids[u] or p.get("ActiveState") not in ACTIVE
            for u, p in shown.items()
        ):
            return
        time.sleep(0.1)


@dataclasses.dataclass(frozen=True)
class Exited:
    instance: str
    code: int


def wait(
    manager: Manager,
    units: Units,
    instances: list[str],
    on_exit: Callable[[Exited], bool],
    poll: float = 1.0,
) -> None:
    """Block until every instance has stopped, calling `on_exit` as each does (QEMU's exit
    status: 0 after the guest powered off); stop early when it returns False."""
    left = units.instance_units(instances)
    while left:
        shown = manager.show(left, ["ActiveState", "ExecMainStatus"])
        for unit in list(left):
            if shown[unit].get("ActiveState") not in ACTIVE:
                left.remove(unit)
                code = int(shown[unit].get("ExecMainStatus") or 0)
                if not on_exit(Exited(units.label(unit), code)):
                    return
        if left:
            time.sleep(poll)


def host_port(
    instances: dict[str, LockedInstance], guest_port: int, protocol: str = "tcp"
) -> int | None:
    """The host port forwarded to `guest_port` of the first instance that has one (SSH's
    own forward for 22 when no published port claims it)."""
    if protocol != "tcp":
        return None  # holosc forwards TCP only
    for info in instances.values():
        for forward in info.ports:
            host, _, guest = forward.partition(":")
            if guest == str(guest_port) and host.isdigit():
                return int(host)
        if guest_port == SSH_GUEST_PORT:
            return info.ssh_port
    return None


@dataclasses.dataclass(frozen=True)
class ProjectRow:
    name: str
    status: str  # "running(3)", "exited(1), running(2)" as compose ls
    config: str  # the directory its holos.yaml was installed from

    @property
    def running(self) -> bool:
        return "running" in self.status


def projects(manager: Manager) -> list[ProjectRow]:
    """Every installed project with its instances' states counted."""
    from holosc.host import status

    rows = []
    for project in install.installed_projects(manager):
        try:
            found = status.all_status(manager, project)
        except RuntimeCommandError:
            continue  # half installed: `ps` says more
        counts: dict[str, int] = {}
        for row in found:
            word = _state_word(row.state)
            counts[word] = counts.get(word, 0) + 1
        text = ", ".join(f"{w}({n})" for w, n in sorted(counts.items())) or "empty"
        rows.append(ProjectRow(project, text, _config_of(manager, project)))
    return rows


def _state_word(state: str) -> str:
    active, _, sub = state.partition("/")
    if active == "active":
        return "running" if sub == "running" else sub
    return {"inactive": "exited", "activating": "starting"}.get(active, active)


def _config_of(manager: Manager, project: str) -> str:
    link = manager.artifacts(project) / "project"
    try:
        return str(Path(os.readlink(link)))
    except OSError:
        return "-"
