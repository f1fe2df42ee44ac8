"""Reaching a systemd manager: where its units and holosc's files live, and systemctl.

The scope is "system" (root's default) or "user". The roots holosc shares with the units
are asked of the manager itself, never derived from a version: what `%S` means for a user
manager changed (systemd 252: $XDG_CONFIG_HOME; 254 and later: $XDG_STATE_HOME).

- The unit directory is the first persistent entry of the manager's UnitPath (not under
  /run, not a `.control` directory): /etc/systemd/system, ~/.config/systemd/user, or the
  only directory a private test manager loads.
- `%S`, `%E` and `%t` are read back from a probe unit holosc keeps there,
  `holos-roots.service`, which is never started: its `Environment=` names the three
  specifiers and `systemctl show` prints what the manager expanded them to (the manager
  loads it on demand, the same way it loads a project's units). Only systemctl is used:
  no D-Bus session bus is needed (`systemd-run --user` fails without dbus-user-session).

The answers live as long as one command; nothing is cached on disk. Everything can be
pointed at another manager without code changes, the way `systemctl --root`/`-M` can
(these skip the corresponding question):

    HOLOSC_UNIT_DIR     directory the manager loads units from
    HOLOSC_CONFIG_DIR   host path of the manager's %E/holos (compiled scripts, seeds)
    HOLOSC_STATE_DIR    host path of the manager's %S/holos (disks, volumes, keys, images)
    HOLOSC_RUNTIME_DIR  host path of the manager's %t/holos (sockets)
    HOLOSC_SYSTEMCTL    the systemctl command, split like a shell would (e.g. nsenter ...)
    HOLOSC_JOURNALCTL   the journalctl command
"""

from __future__ import annotations

import dataclasses
import errno
import functools
import os
import shlex
import subprocess
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

from holosc.core import layout, names
from holosc.emit.write import write_atomic
from holosc.errors import Diagnostic, RuntimeCommandError
from holosc.host import paths, run

BOOT_TARGET = {"system": "multi-user.target", "user": "default.target"}
PROBE_UNIT = "holos-roots.service"
# `systemctl is-system-running` states of a manager that accepts jobs.
REACHABLE = ("running", "degraded", "starting", "initializing", "maintenance")
PROBE_TEXT = (
    "# Written by holosc and never started: `systemctl show -p Environment` of this unit\n"
    "# tells holosc what this manager resolves %S, %E and %t to.\n"
    "[Unit]\nDescription=holosc probe of the manager's directories (never started)\n"
    "RefuseManualStart=yes\n\n"
    '[Service]\nType=oneshot\nEnvironment="S=%S" "E=%E" "T=%t"\nExecStart=/bin/true\n'
)
# systemd.unit(5): the system manager's %S, %E and %t, whatever its version.
SYSTEM_ROOTS = {"state": Path("/var/lib"), "config": Path("/etc"), "runtime": Path("/run")}
OVERRIDES = {
    "state": "HOLOSC_STATE_DIR",
    "config": "HOLOSC_CONFIG_DIR",
    "runtime": "HOLOSC_RUNTIME_DIR",
}


@dataclasses.dataclass(frozen=True)
class Roots:
    """Host paths of the manager's specifiers, and the unit directory holosc installs to."""

    unit_dir: Path
    state: Path  # %S
    config: Path  # %E
    runtime: Path  # %t


@dataclasses.dataclass(frozen=True)
class Manager:
    scope: str
    systemctl: tuple[str, ...]
    journalctl: tuple[str, ...]
    env: Mapping[str, str] = dataclasses.field(default_factory=dict, compare=False, repr=False)

    @functools.cached_property
    def unit_dir(self) -> Path:
        if self.env.get("HOLOSC_UNIT_DIR"):
            return Path(self.env["HOLOSC_UNIT_DIR"])
        return unit_dir_from(self.unit_path(), self.scope)

    @functools.cached_property
    def specifiers(self) -> dict[str, Path]:
        """{"state": %S, "config": %E, "runtime": %t} as this manager resolves them."""
        return self.ask_specifiers()

    @property
    def roots(self) -> Roots:
        spec = self.specifiers
        return Roots(self.unit_dir, spec["state"], spec["config"], spec["runtime"])

    def _root(self, kind: str) -> Path:
        override = self.env.get(OVERRIDES[kind])
        return Path(override) if override else self.specifiers[kind] / "holos"

    @property
    def state_dir(self) -> Path:
        """`%S/holos`: disks, volumes, the project keys, the image cache."""
        return self._root("state")

    @property
    def config_dir(self) -> Path:
        """`%E/holos`: the installed scripts and seeds."""
        return self._root("config")

    @property
    def runtime_dir(self) -> Path:
        """`%t/holos`: sockets and pidfiles."""
        return self._root("runtime")

    def artifacts(self, project: str) -> Path:
        """Where %E/holos/<project> points: the installed scripts and seeds."""
        return layout.artifacts(self.config_dir, names.check("project", project))

    def unit_path(self) -> list[Path]:
        """The manager's UnitPath, in search order."""
        out = self._ask(["show", "-p", "UnitPath", "--value"]).stdout
        return [Path(p) for p in out.split()]

    def ask_specifiers(self) -> dict[str, Path]:
        """Install (when missing or different) and read the probe unit.

        :raises RuntimeCommandError: when the manager cannot be asked.
        """
        probe = self.unit_dir / PROBE_UNIT
        try:
            if not probe.is_file() or probe.read_text("utf-8") != PROBE_TEXT:
                write_atomic(probe, PROBE_TEXT.encode())
        except OSError as exc:
            if self._fixed_system_roots() and exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
                # Not root: reading (ps, logs) needs no probe; writing fails where it writes.
                return dict(SYSTEM_ROOTS)
            raise self._cannot_ask(f"cannot write {probe}: {exc.strerror}") from exc
        props = self._read_probe()
        if props.get("NeedDaemonReload") == "yes":  # an older probe text is loaded
            self._ask(["daemon-reload"])
            props = self._read_probe()
        if props.get("LoadState") != "loaded":
            raise self._cannot_ask(f"{PROBE_UNIT} is {props.get('LoadState') or 'not loaded'}")
        values = dict(v.split("=", 1) for v in shlex.split(props.get("Environment", "")))
        try:
            return {
                "state": Path(values["S"]),
                "config": Path(values["E"]),
                "runtime": Path(values["T"]),
            }
        except KeyError as exc:
            raise self._cannot_ask(f"{PROBE_UNIT} has Environment={values}") from exc

    def _fixed_system_roots(self) -> bool:
        """The host's own system manager, whose %S, %E and %t systemd.unit(5) fixes."""
        return self.scope == "system" and not self.env.get("HOLOSC_SYSTEMCTL")

    def _read_probe(self) -> dict[str, str]:
        out = self._ask(
            ["show", "-p", "LoadState,NeedDaemonReload,Environment", "--", PROBE_UNIT]
        ).stdout
        return dict(line.split("=", 1) for line in out.splitlines() if "=" in line)

    def _ask(self, args: list[str]) -> subprocess.CompletedProcess[str]:
        try:
            return self.ctl(*args, timeout=30)
        except RuntimeCommandError as exc:
            raise self._cannot_ask(exc.message) from exc

    def _cannot_ask(self, reason: str) -> RuntimeCommandError:
        return _error(
            f"cannot ask the {self.scope} manager where its directories are: {reason}",
            (
                "log in, or enable lingering (loginctl enable-linger); "
                if self.scope == "user"
                else ""
            )
            + "or set HOLOSC_UNIT_DIR, HOLOSC_STATE_DIR, HOLOSC_CONFIG_DIR and "
            "HOLOSC_RUNTIME_DIR",
        )

    def ctl(
        self,
        *args: str,
        units: Sequence[str] = (),
        check: bool = True,
        timeout: float | None = None,
    ) -> subprocess.CompletedProcess[str]:
        """Run `systemctl ARGS -- UNITS`; a failure raises RuntimeCommandError unless
        check=False. Units follow `--`, so no unit name can become an option."""
        tail = ["--", *units] if units else []
        return _run([*self.systemctl, *args, *tail], check=check, timeout=timeout)

    def show(self, units: Sequence[str], props: Sequence[str]) -> dict[str, dict[str, str]]:
        """`systemctl show` of several units: {unit: {property: value}}."""
        if not units:
            return {}
        result = self._show(units, props)
        # systemctl prints blocks in argument order; map aliases back to what was asked.
        return {unit: result.get(unit, {}) for unit in units}

    def _show(self, args: Sequence[str], props: Sequence[str]) -> dict[str, dict[str, str]]:
        out = self.ctl(
            "show", "--timestamp=unix", "-p", ",".join(("Id", *props)), units=args
        ).stdout
        result: dict[str, dict[str, str]] = {}
        for block in out.strip().split("\n\n"):
            values = dict(line.split("=", 1) for line in block.splitlines() if "=" in line)
            if "Id" in values:
                result[values["Id"]] = values
        return result

    def show_loaded(self, units: Sequence[str], props: Sequence[str]) -> dict[str, dict[str, str]]:
        """`show` in one query that reads only the units systemd has loaded (running,
        failed or referenced); the others are inactive/dead, as systemd would say.

        Asking by name makes systemd load each unit first: measured with systemd 252, 100
        installed, stopped instance units took 54 s and 253 failed with "No buffer space
        available". A name written as a glob (its last letter in brackets) matches only
        a loaded unit of exactly that name, so nothing gets loaded."""
        globs = [u if set(u) & set("*?[]\\") else f"{u[:-1]}[{u[-1]}]" for u in units if u]
        if not globs:
            return {}
        result = self._show(globs, props)
        unloaded = {"ActiveState": "inactive", "SubState": "dead", "LoadState": "not-loaded"}
        return {unit: result.get(unit, {"Id": unit, **unloaded}) for unit in units}

    def reachable(self) -> bool:
        try:
            state = self.ctl("is-system-running", check=False, timeout=15).stdout.strip()
        except RuntimeCommandError:
            return False
        return state in REACHABLE

    def require(self) -> None:
        """:raises RuntimeCommandError: when the manager does not answer."""
        if not self.reachable():
            raise _error(
                f"systemd ({self.scope} manager) is not reachable",
                "is systemd running? for a user manager, log in or enable linger "
                "(loginctl enable-linger)",
            )

    def journal(self, units: Iterable[str], lines: int = 20, follow: bool = False) -> list[str]:
        argv = [*self.journalctl, "--no-pager", "-o", "short-precise", "-n", str(lines)]
        argv += [f"--unit={u}" for u in units]  # one word each: a name cannot be an option
        return argv + (["-f"] if follow else [])


def unit_dir_from(unit_path: Sequence[Path], scope: str) -> Path:
    """The first persistent, administrator's entry of UnitPath.

    :raises RuntimeCommandError: when there is none.
    """
    for entry in unit_path:
        volatile = entry.parts[1:2] == ("run",) or entry.name.endswith(".control")
        if not volatile and not entry.is_relative_to("/usr"):
            return entry
    raise _error(
        f"the {scope} manager's UnitPath has no persistent unit directory: "
        f"{' '.join(map(str, unit_path)) or '(empty)'}",
        "set HOLOSC_UNIT_DIR",
    )


def manager(scope: str | None = None, env: Mapping[str, str] | None = None) -> Manager:
    """The manager for `scope` (default: system for root, user otherwise)."""
    env = dict(os.environ if env is None else env)
    scope = scope or paths.default_scope()
    flag = ["--user"] if scope == "user" else []
    systemctl = (
        shlex.split(env["HOLOSC_SYSTEMCTL"])
        if env.get("HOLOSC_SYSTEMCTL")
        else ["systemctl", *flag]
    )
    journalctl = (
        shlex.split(env["HOLOSC_JOURNALCTL"])
        if env.get("HOLOSC_JOURNALCTL")
        else ["journalctl", *flag]
    )
    return Manager(scope=scope, systemctl=tuple(systemctl), journalctl=tuple(journalctl), env=env)


def _run(
    argv: Sequence[str], *, check: bool, timeout: float | None
) -> subprocess.CompletedProcess[str]:
    return run.run(argv, check=check, timeout=timeout, hint="holosc needs systemd")


def _error(message: str, hint: str | None = None) -> RuntimeCommandError:
    return RuntimeCommandError(message, [Diagnostic(message, file="holosc", hint=hint)])
