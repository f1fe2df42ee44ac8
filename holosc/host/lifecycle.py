"""up, down, start and stop: compiled units driven through systemd.

holosc keeps no state of its own: what is installed is read from the manager's
directories (installed.json, holos.lock.json) and what runs is asked of systemd.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import re
import shutil
import subprocess
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from holos_runtime import consolelog

from holosc.core import layout, names
from holosc.core.compiler import Output
from holosc.core.model import Project
from holosc.errors import Diagnostic, RuntimeCommandError, UnitFailedError
from holosc.host import diskspace, disktags, install, journal, progress, recreate, run
from holosc.host.progress import Progress
from holosc.host.recreate import StaleDisk
from holosc.host.systemd import Manager

Say = Callable[[str], None]
STATE_PROPS = ("ActiveState", "SubState", "Result", "MainPID")


@dataclasses.dataclass(frozen=True)
class Units:
    """The installed units of one project, by role."""

    project: str
    instances: tuple[str, ...]  # instance names, dependency order
    gates: tuple[str, ...]  # unit names
    others: tuple[str, ...]  # volumes, switch, image and build units

    @property
    def target(self) -> str:
        return layout.target_name(self.project)

    def instance_units(self, names: Sequence[str] | None = None) -> list[str]:
        return [self.unit(i) for i in (self.instances if names is None else names)]

    def unit(self, instance: str) -> str:
        return layout.instance_unit(self.project, *layout.split_instance(instance))

    def of_service(self, service: str) -> tuple[list[str], list[str]]:
        """(instance units, gate units) of one service."""
        insts = [i for i in self.instances if layout.split_instance(i)[0] == service]
        gate = layout.gate_unit(self.project, service)
        return self.instance_units(insts), [gate] if gate in self.gates else []

    def watched(self) -> list[str]:
        """The units whose state `ps` and `up` report: instances, then health gates."""
        return [*self.instance_units(), *self.gates]

    def label(self, unit: str) -> str:
        """db-0 for holos-p-db@0.service, db-healthy for the gate, else the unit name."""
        return layout.unit_label(self.project, unit)

    def all(self) -> list[str]:
        return [*self.others, *self.instance_units(), *self.gates, self.target]


def installed_units(manager: Manager, project: str) -> Units:
    """:raises RuntimeCommandError: when the project is not installed."""
    lock = install.read_lock(manager, project)
    manifest = install.read_manifest(manager, project)
    if lock is None or not manifest["units"]:
        raise error(
            f"project '{project}' is not installed",
            "run holosc up (or holosc install) in its directory first",
        )
    order = sorted(lock.instances, key=lambda i: lock.instances[i].ip_order())
    gates = tuple(n for n in manifest["units"] if layout.is_gate(n))
    own = (
        layout.volumes_unit(project),
        layout.switch_unit(project),
        layout.console_logs_timer(project),
    )
    others = tuple(
        n
        for n in manifest["units"]
        if n in own or layout.is_image_unit(project, n) or layout.is_build_unit(n)
    )
    return Units(project, tuple(order), gates, others)


def installed_elsewhere(manager: Manager, project: str, project_dir: Path) -> list[str]:
    """Other installed projects whose holos.yaml directory is `project_dir` (a rename)."""
    found = []
    for other in install.installed_projects(manager):
        link = manager.artifacts(other) / "project"
        if other != project and link.is_symlink() and Path(os.readlink(link)) == project_dir:
            found.append(other)
    return found


def disk_warning(project: Project, manager: Manager) -> str | None:
    """A warning when the declared root disks and named volumes can outgrow the state
    filesystem (see diskspace.oversubscribed)."""
    state = manager.state_dir
    items: list[tuple[str, Path, int]] = []
    for service in project.services:
        for index in range(service.replicas if service.vm.disk_size else 0):
            inst = layout.instance_name(service.name, index)
            disk = layout.root_disk(state, project.name, inst)
            items.append((f"{inst} disk", disk, service.vm.disk_size or 0))
    for volume in project.volumes:
        if volume.name in project.used_volumes:
            path = layout.volume_disk(state, project.name, volume.name)
            items.append((f"volume {volume.name}", path, volume.size))
    return diskspace.oversubscribed(state, items)


def require_scope(project: Project, manager: Manager) -> None:
    """External networks put taps on a host bridge: the system manager's alone.

    :raises RuntimeCommandError: under a user manager.
    """
    external = [n.name for n in project.networks if n.external is not None]
    if external and manager.scope == "user":
        raise error(
            f"network '{external[0]}' is external (a host bridge): user scope cannot attach "
            "VMs to it (tap devices need root)",
            "run holosc as root (system scope), or use a network of the project instead",
        )


def error(message: str, hint: str | None = None) -> RuntimeCommandError:
    return RuntimeCommandError(message, [Diagnostic(message, file="holosc", hint=hint)])


def up(
    output: Output,
    manager: Manager,
    project: str,
    project_dir: Path,
    say: Say,
    *,
    recreate: Sequence[StaleDisk] = (),
    progress_to: Progress | None = None,
) -> None:
    """Install, reload, restart what changed, start everything; raise if anything failed.
    A running project whose output did not change is left alone (no reload, no start).
    The `recreate` disks are removed first (their instances stopped if running), so that
    their instances start on the image as it is now."""
    manager.require()
    drop_kept_console_logs(manager.state_dir, project)
    for other in installed_elsewhere(manager, project, project_dir):
        say(
            f"holosc: warning: project '{other}' was installed from this directory too "
            f"({project_dir}) and is still installed: renamed? its VMs keep running and "
            f"its volumes are not '{project}''s; holosc down -p {other} removes it "
            f"(add --volumes to delete its volumes)"
        )
    retired = _stop_removed(output, manager, project, say)
    changes = install.install(output, manager, project, project_dir)
    units = installed_units(manager, project)
    shown = manager.show_loaded(units.all(), ["LoadState", "NeedDaemonReload", "ActiveState"])
    if not (changes.any or retired or recreate) and all(
        p["ActiveState"] == "active" for p in shown.values()
    ):
        say(_running(units) + "; nothing changed")
        return
    if changes.any or retired or _stale(shown):
        manager.ctl("daemon-reload")
    _remove_instances(manager, project, retired)
    _recreate_disks(manager, units, recreate, say)
    active = {
        u
        for u, p in manager.show(units.instance_units(), ["ActiveState"]).items()
        if p.get("ActiveState") in ("active", "activating", "reloading")
    }
    running = active & set(units.instance_units(sorted(changes.changed_instances)))
    switch = layout.switch_unit(project)
    if switch in changes.written_units:
        # New networks: the switch binds their sockets at start. Its restart takes a
        # second, and the VMs keep running (docs/units.md, "Networks").
        manager.ctl("try-restart", units=[switch], check=False)
    restart = [units.unit(i) for i in units.instances if units.unit(i) in running]
    for unit in restart:
        say(f"{units.label(unit)}: changed, restarting")
    if restart:
        # A new version starts a new life: earlier crashes do not count towards the
        # start limit (which counts restarts by `up` too).
        manager.ctl("reset-failed", units=restart, check=False)
        restart_together(manager, restart)
    gates = [
        gate
        for gate in units.gates
        if any(u in running for u in units.of_service(layout.gate_service(project, gate))[0])
    ]
    for gate in gates:
        say(f"{layout.gate_service(project, gate)}: re-checking health")
    if gates:
        restart_together(manager, gates, check=False)
    clear_start_limits(manager, units, units.all(), say)
    _start_and_watch(manager, units, units.all(), say, progress_to)
    if changes.peers_changed:
        from holosc.host import peers  # its guest script loads the YAML escaper: ps must not

        # Restarted and new guests read the new list at boot; the others run on.
        kept = [i for i in units.instances if units.unit(i) in active - running]
        peers.update(manager, project, kept, changes.peers_changed, say)


def restart_together(manager: Manager, names: list[str], *, check: bool = True) -> None:
    """Restart exactly these units in one transaction: systemd runs the restarts at once,
    each waiting only for what it is ordered after among them (a dependency's new life
    before its dependents'), so N changed replicas take one grace period, not N. Nothing
    else is pulled in or restarted: dependents of a restarted VM keep running (compose
    semantics)."""
    manager.ctl("restart", "--job-mode=ignore-requirements", units=names, check=check)


def _recreate_disks(manager: Manager, units: Units, stale: Sequence[StaleDisk], say: Say) -> None:
    """Stop each instance (only it: its dependents keep running), remove its root disk;
    the start that follows creates a new one on the image's current digest."""
    for disk in stale:
        say(f"{disk.instance}: recreating its disk: {disk.reason}")
    if stale:  # one stop for all: they shut down at once, within one grace period
        manager.ctl(
            "stop", "--job-mode=ignore-dependencies", units=[units.unit(d.instance) for d in stale]
        )
    for disk in stale:
        recreate.remove(disk)


def _stale(shown: dict[str, dict[str, str]]) -> bool:
    """Whether systemd's copy of a loaded unit differs from its file (a reload was missed;
    units not loaded are read afresh when started). One `systemctl show` for all units:
    an unchanged re-run of `up` costs no daemon-reload."""
    return any(
        p["LoadState"] != "not-loaded"
        and (p.get("LoadState") != "loaded" or p.get("NeedDaemonReload") != "no")
        for p in shown.values()
    )


def report_interrupted(manager: Manager, project: str, say: Say) -> None:
    """After Ctrl-C in `up`: what was left running and how to go on."""
    try:
        units = installed_units(manager, project)
        states = manager.show([*units.instance_units(), *units.gates], ["ActiveState"])
    except RuntimeCommandError:
        say(f"{project}: interrupted before anything was installed")
        return
    word = {"active": "running", "activating": "starting", "failed": "FAILED"}
    left = [
        f"{units.label(u)} {word.get(p.get('ActiveState', ''), p.get('ActiveState', '?'))}"
        for u, p in states.items()
    ]
    say(f"{project}: interrupted; {', '.join(left)}")
    say(
        "systemd finishes the starts already queued; run holosc up again to continue, "
        f"or holosc down -p {project} to stop everything"
    )


def clear_start_limits(manager: Manager, units: Units, names: list[str], say: Say) -> None:
    """Before starting what the user asked for: say which units systemd gave up restarting
    (start limit hit), and `reset-failed` every failed one so that the start can go on."""
    states = manager.show(names, ["ActiveState", "Result", "NRestarts"])
    failed = [u for u, p in states.items() if p.get("ActiveState") == "failed"]
    for unit in failed:
        if states[unit].get("Result") == "start-limit-hit" or _gave_up(manager, unit):
            say(
                f"{units.label(unit)}: systemd stopped restarting it after "
                f"{states[unit].get('NRestarts') or 0} restart(s) (start limit hit: it kept "
                "crashing); clearing that (reset-failed) and starting it"
            )
    if failed:
        manager.ctl("reset-failed", units=failed, check=False)


def journal_tail(manager: Manager, unit: str, lines: int) -> str:
    """The last `lines` messages of `unit`, without decoration ('' when unreadable)."""
    return run.output([*manager.journal([unit], lines=lines), "-o", "cat"])


def _gave_up(manager: Manager, unit: str) -> bool:
    """systemd 252 keeps Result=signal when an automatic restart hits the start limit; only
    its journal says so."""
    tail = journal_tail(manager, unit, 3)
    return "Start request repeated too quickly" in tail


def start_units(manager: Manager, units: Units, names: list[str], say: Say) -> None:
    """`holosc start`: clear start limits the user overrides by asking, then start."""
    clear_start_limits(manager, units, names, say)
    result = manager.ctl("start", units=names, check=False)
    if result.returncode != 0:
        states = manager.show(names, [*STATE_PROPS, "InactiveEnterTimestampMonotonic"])
        failed = [u for u in names if states[u].get("ActiveState") != "active"]
        message = f"{', '.join(units.label(u) for u in failed) or result.stderr.strip()} " + (
            "did not start" + failure_cause(manager, units, states, failed)
        )
        raise UnitFailedError(message, [Diagnostic(message, file="holosc")])


def failure_cause(
    manager: Manager, units: Units, states: dict[str, dict[str, str]], down: Sequence[str]
) -> str:
    """ "; X failed first (result); its journal from this start:" and those lines, for the
    unit of `down` that entered the failed state first (the others failed or never
    started because of it); "" when none of them failed."""
    failed = [u for u in down if states[u].get("ActiveState") == "failed"]
    if not failed:
        return ""
    first = min(failed, key=lambda u: int(states[u].get("InactiveEnterTimestampMonotonic") or 0))
    lines = journal.this_start(manager, first, 15)
    return f"; {units.label(first)} failed first ({states[first].get('Result')})" + (
        ": its journal from this start:\n" + "\n".join(lines) if lines else ""
    )


def _stop_removed(output: Output, manager: Manager, project: str, say: Say) -> list[str]:
    """Stop what this install removes by the path of `holosc stop`, while its unit files
    still exist (without them systemd forgets ExecStop= and kills the VM); returns the
    removed instances."""
    instances, others = install.removals(output, manager, project)
    units = [layout.instance_unit(project, *layout.split_instance(i)) for i in instances]
    units += others
    alive = [
        u
        for u, p in manager.show(units, ["ActiveState"]).items()
        if p.get("ActiveState") not in ("inactive", "failed", "")
    ]
    if alive:
        started = time.monotonic()
        say(f"{project}: stopping removed {' '.join(instances or alive)}")
        stop_units(manager, project, alive, say)
        say(f"{project}: removed units stopped in {time.monotonic() - started:.1f} s")
    if units:
        manager.ctl("reset-failed", units=units, check=False)
    return instances


def _remove_instances(manager: Manager, project: str, instances: Sequence[str]) -> None:
    """Disks and runtime directories of removed instances, as `down` removes them."""
    for inst in instances:
        shutil.rmtree(layout.instance_state(manager.state_dir, project, inst), ignore_errors=True)
        shutil.rmtree(manager.runtime_dir / project / inst, ignore_errors=True)


def _start_and_watch(
    manager: Manager, units: Units, names: list[str], say: Say, progress_to: Progress | None
) -> None:
    """`systemctl start` every unit by name (so a failed gate fails the call) and report
    each instance's progress while it runs (on `progress_to`: what each unit waits for)."""
    result: list[subprocess.CompletedProcess[str]] = []
    worker = threading.Thread(
        target=lambda: result.append(manager.ctl("start", units=names, check=False))
    )
    images = [
        u for u in units.others if layout.is_image_unit(units.project, u) or layout.is_build_unit(u)
    ]
    watched = [*images, *units.watched()]
    # Report changes only: a state left from an earlier run is no news ("FAILED").
    seen = {u: p.get("ActiveState", "?") for u, p in manager.show(watched, ["ActiveState"]).items()}
    worker.start()
    labels = {u: units.label(u) for u in watched}
    watch = progress.Watch(manager, units.project, progress_to) if progress_to else None
    while worker.is_alive():
        now = _report(manager, watched, labels, seen, say)
        if watch:
            watch.step(now)
        worker.join(timeout=1.0)
    if watch:
        watch.step({u: "" for u in watched})  # every line ends
    _report(manager, watched, labels, seen, say)
    states = manager.show(watched, [*STATE_PROPS, "InactiveEnterTimestampMonotonic"])
    down = [u for u in watched if states[u].get("ActiveState") != "active"]
    if result[0].returncode != 0 or down:
        failed = [u for u in down if states[u].get("ActiveState") == "failed"]
        for unit in failed:
            say(f"{labels[unit]}: failed ({states[unit].get('Result')})")
        held = [labels[u] for u in down if u not in failed]
        if held and failed:
            say(f"not started, as a unit they need failed: {', '.join(held)}")
        for unit in [] if failed else down:
            say(f"{labels[unit]}: {states[unit].get('ActiveState')} ({states[unit].get('Result')})")
        for clash in port_clashes(manager, units, failed):
            say(clash)
        if all(u in down for u in units.instance_units()):
            # Its Wants= keep a target active with nothing of it running: stopped, the
            # project reads as down (systemctl, install --enable's boot) until the next up.
            manager.ctl("stop", units=[units.target], check=False)
            say(f"{units.project}: no instance runs; stopped {units.target}")
        message = (
            f"project {units.project} did not start: "
            f"{', '.join(labels[u] for u in failed or down) or result[0].stderr.strip()}"
            + failure_cause(manager, units, states, down)
        )
        raise UnitFailedError(message, [Diagnostic(message, file="holosc")])
    say(_running(units))


def _running(units: Units) -> str:
    return f"{units.project}: {len(units.instances)} instance(s) running" + (
        f", {len(units.gates)} health gate(s) passed" if units.gates else ""
    )


_HOSTFWD = re.compile(r"host forwarding rule '(tcp|udp):([^:']*):(\d+)-")


def port_clashes(manager: Manager, units: Units, failed: Sequence[str]) -> list[str]:
    """One line per host port QEMU could not bind in this start of an instance: the port,
    whose it is (a published port of the service, or the instance's SSH forward) and,
    when `ss` can tell, the process that holds it."""
    lock = install.read_lock(manager, units.project)
    lines = []
    for unit in failed:
        if unit not in units.instance_units():
            continue
        inst = units.label(unit)
        log = "\n".join(journal.this_start(manager, unit, 30))
        for proto, addr, port in sorted(set(_HOSTFWD.findall(log))):
            info = lock.instances.get(inst) if lock else None
            whose = (
                f"{inst}'s SSH forward (holosc picked it)"
                if info is not None and proto == "tcp" and int(port) == info.ssh_port
                else f"published by service {layout.split_instance(inst)[0]}"
            )
            lines.append(
                f"{inst}: host port {port}/{proto} ({addr or '*'}), {whose}, is already in use"
                + (f" by {holder}" if (holder := _port_holder(proto, port)) else "")
            )
    return lines


def _port_holder(proto: str, port: str) -> str | None:
    """`ss` names the listening process (root sees every process)."""
    out = run.output(
        ["ss", "-Hlnp", "-t" if proto == "tcp" else "-u", f"sport = :{port}"], timeout=10
    )
    found = re.search(r'users:\(\("([^"]+)",pid=(\d+)', out)
    return f"{found[1]} (pid {found[2]})" if found else ("another process" if out else None)


def _report(
    manager: Manager, units: list[str], labels: dict[str, str], seen: dict[str, str], say: Say
) -> dict[str, str]:
    """Say each unit's new state; returns {unit: ActiveState}."""
    states = {u: p.get("ActiveState", "?") for u, p in manager.show(units, ["ActiveState"]).items()}
    for unit, state in states.items():
        if seen.get(unit) != state:
            seen[unit] = state
            word = {"activating": "starting", "active": "running", "failed": "FAILED"}
            label = labels.get(unit, unit)
            if layout.is_gate(unit):
                word = {
                    "activating": "waiting for health",
                    "active": "healthy",
                    "failed": "UNHEALTHY",
                }
            elif "@" not in unit and ("-image-" in unit or layout.is_build_unit(unit)):
                # up pulled and built already: quiet unless it fails
                word = {"failed": "FAILED"}
            if state in word:
                say(f"{label}: {word[state]}")
    return states


def stop_units(manager: Manager, project: str, names: list[str], say: Say) -> None:
    """Stop exactly these units (dependents are left alone) and wait until they are down;
    say which VMs had to be force-quit."""
    manager.ctl("stop", "--job-mode=ignore-dependencies", units=names)
    report_forced(manager, project, names, say)


_STOP_OUTCOMES = (
    ("guest shut down after", None),
    ("nothing to stop", None),
    ("no shutdown after", "did not shut down in its grace period; force-quit (QMP quit)"),
    ("cannot act on the power button", "its guest was {paused}: quit at once (QMP quit)"),
    ("could not stop", "did not answer QMP; killed by systemd"),
)
_PAUSED = re.compile(r"guest is (\S+), it cannot act on the power button")


def report_forced(manager: Manager, project: str, names: Sequence[str], say: Say) -> list[str]:
    """One line per VM whose last stop was not graceful, from holos-qmp-stop's log, and
    the last lines of its console (a guest still booting ignores the ACPI button: its
    console says how far it got). Returns the instances that were forced."""
    forced = []
    for unit in names:
        if "@" not in unit:
            continue
        log = "\n".join(journal.this_start(manager, unit, 12))
        at, outcome = max(
            ((log.rfind(marker), outcome) for marker, outcome in _STOP_OUTCOMES),
            key=lambda found: found[0],
        )
        if at >= 0 and outcome:
            paused = [m[1] for m in _PAUSED.finditer(log)]
            state = paused[-1] if paused else "paused"
            word = {"paused": "paused", "io-error": "paused on an I/O error"}.get(
                state, f"paused ({state})"
            )
            inst = layout.unit_label(project, unit)
            say(f"{inst}: {outcome.format(paused=word)}")
            forced.append(inst)
            _say_console_tail(layout.console_log(manager.state_dir, project, inst), inst, say)
    return forced


CONSOLE_LINES = 8


def _say_console_tail(log: Path, inst: str, say: Say) -> None:
    try:
        text = consolelog.tail(log, CONSOLE_LINES * 4).decode(errors="replace")
    except OSError:
        return
    lines = [line.rstrip() for line in text.replace("\r", "\n").split("\n") if line.strip()]
    if lines:
        say(f"{inst}: the console's last lines ({log}):")
        for line in lines[-CONSOLE_LINES:]:
            say(f"  | {line[:200]}")  # a guest's text: say() shows it terminal-safe


def keep_console_logs(state: Path, project: str) -> list[Path]:
    """What `down` leaves of the project's instances: each console log, renamed, until
    the next `up` (the rest of the instance directories goes)."""
    kept = []
    root = layout.instances(state, project)
    for inst_dir in sorted(root.iterdir()) if root.is_dir() else []:
        if not inst_dir.is_dir() or inst_dir.is_symlink():
            continue
        inst = inst_dir.name
        log = layout.console_log(state, project, inst)
        keep = layout.kept_console_log(state, project, inst)
        for entry in inst_dir.iterdir():
            if entry == log and entry.is_file() and entry.stat().st_size:
                os.replace(entry, keep)
                kept.append(keep)
            elif entry != keep:
                if entry.is_dir() and not entry.is_symlink():
                    shutil.rmtree(entry, ignore_errors=True)
                else:
                    entry.unlink(missing_ok=True)
        with contextlib.suppress(OSError):
            inst_dir.rmdir()  # nothing kept
    with contextlib.suppress(OSError):
        root.rmdir()
    return kept


def drop_kept_console_logs(state: Path, project: str) -> None:
    """At `up`: the logs an earlier `down` kept have had their time."""
    root = layout.instances(state, project)
    for inst_dir in sorted(root.iterdir()) if root.is_dir() else []:
        if inst_dir.is_dir() and not inst_dir.is_symlink():
            layout.kept_console_log(state, project, inst_dir.name).unlink(missing_ok=True)
            with contextlib.suppress(OSError):
                inst_dir.rmdir()  # an instance that has not started since


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
    names.check("project", project)
    units = installed_units(manager, project)
    manager.require()
    started = time.monotonic()
    running = [
        u
        for u, p in manager.show(units.instance_units(), ["ActiveState"]).items()
        if p.get("ActiveState") in ("active", "activating", "deactivating", "reloading")
    ]
    # One transaction: systemd stops in reverse dependency order (the reverse of After=).
    manager.ctl("stop", units=list(reversed(units.all())))
    alive = wait_stopped(manager, units.all())
    if alive:
        raise error(f"units still running after stop: {' '.join(alive)}")
    forced = report_forced(manager, project, running, say)
    idle = [units.label(u) for u in units.instance_units() if u not in running]
    say(
        f"{project}: stopped {len(running)} instance(s) in {time.monotonic() - started:.1f} s"
        + (
            f" ({', '.join(idle)} {'was' if len(idle) == 1 else 'were'} not running)"
            if idle
            else ""
        )
    )
    # Failed units would stay listed as "not-found failed" once their files are gone.
    manager.ctl("reset-failed", units=units.all(), check=False)
    install.uninstall(manager, project)
    manager.ctl("daemon-reload")
    kept = keep_console_logs(manager.state_dir, project)
    if forced and kept:
        say(
            f"{project}: console logs kept until the next up: "
            f"{layout.instances(manager.state_dir, project)}/*/{kept[0].name}"
        )
    shutil.rmtree(manager.runtime_dir / project, ignore_errors=True)
    if not volumes:
        # The instances' snapshots went with their disks; their parts in the kept
        # volumes go too.
        disktags.remove_volume_tags(manager, project)
    else:
        shutil.rmtree(layout.volumes(manager.state_dir, project), ignore_errors=True)
        shutil.rmtree(layout.project_keys(manager.state_dir, project), ignore_errors=True)
        say(f"{project}: removed named volumes and the project key")
