"""up, down, start and stop: compiled units driven through systemd.

holosc keeps no state of its own: what is installed is read from the manager's
directories (installed.json, holos.lock.json) and what runs is asked of systemd.
"""

from __future__ import annotations

import dataclasses
import shutil
import subprocess
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from holosc import install, plan
from holosc.compiler import Output
from holosc.errors import Diagnostic, RuntimeCommandError, UnitFailedError
from holosc.systemd import Manager

Say = Callable[[str], None]
STATE_PROPS = ("ActiveState", "SubState", "Result", "MainPID")


@dataclasses.dataclass(frozen=True)
class Units:
    """The installed units of one project, by role."""

    project: str
    instances: tuple[str, ...]  # instance names, dependency order
    gates: tuple[str, ...]  # unit names
    others: tuple[str, ...]  # volumes and image units

    @property
    def target(self) -> str:
        return plan.target_name(self.project)

    def instance_units(self, names: Sequence[str] | None = None) -> list[str]:
        return [self.unit(i) for i in (self.instances if names is None else names)]

    def unit(self, instance: str) -> str:
        return plan.instance_unit(self.project, *plan.split_instance(instance))

    def of_service(self, service: str) -> tuple[list[str], list[str]]:
        """(instance units, gate units) of one service."""
        insts = [i for i in self.instances if plan.split_instance(i)[0] == service]
        gate = plan.gate_unit(self.project, service)
        return self.instance_units(insts), [gate] if gate in self.gates else []

    def all(self) -> list[str]:
        return [*self.others, *self.instance_units(), *self.gates, self.target]


def installed_units(manager: Manager, project: str) -> Units:
    """:raises RuntimeCommandError: when the project is not installed."""
    lock = install.read_lock(manager, project)
    manifest = install.read_manifest(manager, project)
    if not lock or not manifest["units"]:
        raise error(
            f"project '{project}' is not installed",
            "run holosc up (or holosc install) in its directory first",
        )
    instances = lock.get("instances", {})
    assert isinstance(instances, dict)
    order = sorted(instances, key=lambda i: tuple(map(int, instances[i]["ip"].split("."))))
    gates = tuple(n for n in manifest["units"] if n.endswith("-healthy.service"))
    others = tuple(
        n for n in manifest["units"] if n == plan.volumes_unit(project) or _is_image(project, n)
    )
    return Units(project, tuple(order), gates, others)


def _is_image(project: str, unit: str) -> bool:
    return (
        unit.startswith(f"holos-{project}-image-")
        and "@" not in unit
        and not unit.endswith("-healthy.service")
    )


def error(message: str, hint: str | None = None) -> RuntimeCommandError:
    return RuntimeCommandError(message, [Diagnostic(message, file="holosc", hint=hint)])


def up(output: Output, manager: Manager, project: str, project_dir: Path, say: Say) -> None:
    """Install, reload, restart what changed, start everything; raise if anything failed."""
    manager.require()
    changes = install.install(output, manager, project, project_dir)
    manager.ctl("daemon-reload")
    units = installed_units(manager, project)
    _stop_removed(manager, project, changes, say)
    running = {
        u
        for u, p in manager.show(
            units.instance_units(sorted(changes.changed_instances)), ["ActiveState"]
        ).items()
        if p.get("ActiveState") in ("active", "activating", "reloading")
    }
    for inst in units.instances:  # dependency order
        unit = units.unit(inst)
        if unit in running:
            say(f"{inst}: changed, restarting")
            # Only this unit: dependents of a restarted VM keep running (compose semantics).
            manager.ctl("restart", "--job-mode=ignore-dependencies", unit)
    for gate in units.gates:
        service = gate[len(f"holos-{project}-") : -len("-healthy.service")]
        if any(
            units.unit(i) in running
            for i in units.instances
            if plan.split_instance(i)[0] == service
        ):
            say(f"{service}: re-checking health")
            manager.ctl("restart", "--job-mode=ignore-dependencies", gate, check=False)
    _start_and_watch(manager, units, units.all(), say)


def _stop_removed(manager: Manager, project: str, changes: install.Installed, say: Say) -> None:
    gone = [
        plan.instance_unit(project, *plan.split_instance(i))
        for i in sorted(changes.removed_instances)
    ]
    gone += [u for u in sorted(changes.removed_units) if "@" not in u]
    if gone:
        say(f"stopping removed units: {' '.join(gone)}")
        manager.ctl("stop", *gone, check=False)


def _start_and_watch(manager: Manager, units: Units, names: list[str], say: Say) -> None:
    """`systemctl start` every unit by name (so a failed gate fails the call) and report
    each instance's progress while it runs."""
    result: list[subprocess.CompletedProcess[str]] = []
    worker = threading.Thread(
        target=lambda: result.append(manager.ctl("start", *names, check=False))
    )
    images = [u for u in units.others if _is_image(units.project, u)]
    watched = [*images, *units.instance_units(), *units.gates]
    # A unit left failed by an earlier up is not news: without this, the first poll (before
    # the new start job begins) would report it FAILED although this start succeeds.
    before = manager.show(watched, ["ActiveState"])
    seen = {u: "failed" for u, p in before.items() if p.get("ActiveState") == "failed"}
    worker.start()
    labels = {units.unit(i): i for i in units.instances}
    labels |= {
        u: u[len(f"holos-{units.project}-") : -len(".service")] for u in [*images, *units.gates]
    }
    while worker.is_alive():
        _report(manager, watched, labels, seen, say)
        worker.join(timeout=1.0)
    _report(manager, watched, labels, seen, say)
    states = manager.show(watched, STATE_PROPS)
    failed = [u for u in watched if states[u].get("ActiveState") != "active"]
    if result[0].returncode != 0 or failed:
        for unit in failed or watched[:1]:
            say(
                f"{labels.get(unit, unit)}: {states[unit].get('ActiveState')} "
                f"({states[unit].get('Result')})"
            )
        tail = subprocess.run(
            manager.journal(failed[:3] or [units.target], lines=15),
            capture_output=True,
            text=True,
            check=False,
        ).stdout
        message = (
            f"project {units.project} did not start: "
            f"{', '.join(labels.get(u, u) for u in failed) or result[0].stderr.strip()}"
            + ("\n" + tail.rstrip() if tail.strip() else "")
        )
        raise UnitFailedError(message, [Diagnostic(message, file="holosc")])
    say(
        f"{units.project}: {len(units.instances)} instance(s) running"
        + (f", {len(units.gates)} health gate(s) passed" if units.gates else "")
    )


def _report(
    manager: Manager, units: list[str], labels: dict[str, str], seen: dict[str, str], say: Say
) -> None:
    for unit, props in manager.show(units, ["ActiveState"]).items():
        state = props.get("ActiveState", "?")
        if seen.get(unit) != state:
            seen[unit] = state
            word = {"activating": "starting", "active": "running", "failed": "FAILED"}
            label = labels.get(unit, unit)
            if unit.endswith("-healthy.service"):
                word = {
                    "activating": "waiting for health",
                    "active": "healthy",
                    "failed": "UNHEALTHY",
                }
            elif "@" not in unit and "-image-" in unit:  # up pulled already: quiet unless it fails
                word = {"failed": "FAILED"}
            if state in word:
                say(f"{label}: {word[state]}")


def stop_units(manager: Manager, names: list[str]) -> None:
    """Stop exactly these units (dependents are left alone) and wait until they are down."""
    manager.ctl("stop", "--job-mode=ignore-dependencies", *names)


def wait_stopped(manager: Manager, names: list[str], timeout: float = 60) -> list[str]:
    """Units still running after `timeout` (systemctl may return before PartOf= stops)."""
    deadline = time.monotonic() + timeout
    while True:
        alive = [
            u
            for u, p in manager.show(names, ["ActiveState"]).items()
            if p.get("ActiveState") not in ("inactive", "failed", "")
        ]
        if not alive or time.monotonic() > deadline:
            return alive
        time.sleep(0.5)


def down(manager: Manager, project: str, *, volumes: bool, say: Say) -> None:
    manager.require()
    units = installed_units(manager, project)
    started = time.monotonic()
    # One transaction: systemd stops in reverse dependency order (the reverse of After=).
    manager.ctl("stop", *reversed(units.all()))
    alive = wait_stopped(manager, units.all())
    if alive:
        raise error(f"units still running after stop: {' '.join(alive)}")
    say(
        f"{project}: stopped {len(units.instances)} instance(s) in "
        f"{time.monotonic() - started:.1f} s"
    )
    install.uninstall(manager, project)
    manager.ctl("daemon-reload")
    shutil.rmtree(manager.state_dir / "instances" / project, ignore_errors=True)
    if volumes:
        shutil.rmtree(manager.state_dir / "volumes" / project, ignore_errors=True)
        shutil.rmtree(manager.state_dir / "ssh" / project, ignore_errors=True)
        say(f"{project}: removed named volumes and the project key")
