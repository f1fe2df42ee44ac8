"""Reaching a systemd manager: where its units and holosc's files live, and systemctl.

The scope is "system" (root's default) or "user". Everything here can be pointed at
another manager without code changes, the way `systemctl --root`/`-M` can:

    HOLOSC_UNIT_DIR     directory the manager loads units from
    HOLOSC_CONFIG_DIR   host path of the manager's %E/holos (compiled scripts, seeds)
    HOLOSC_STATE_DIR    host path of the manager's %S/holos (disks, volumes, keys, images)
    HOLOSC_RUNTIME_DIR  host path of the manager's %t/holos (sockets)
    HOLOSC_SYSTEMCTL    the systemctl command, split like a shell would (e.g. nsenter ...)
    HOLOSC_JOURNALCTL   the journalctl command
"""

from __future__ import annotations

import dataclasses
import os
import shlex
import subprocess
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

from holosc import paths
from holosc.errors import Diagnostic, RuntimeCommandError

BOOT_TARGET = {"system": "multi-user.target", "user": "default.target"}


@dataclasses.dataclass(frozen=True)
class Manager:
    scope: str
    unit_dir: Path
    config_dir: Path
    state_dir: Path
    runtime_dir: Path
    systemctl: tuple[str, ...]
    journalctl: tuple[str, ...]

    def artifacts(self, project: str) -> Path:
        """Where %E/holos/<project> points: the installed scripts and seeds."""
        return self.config_dir / project

    def ctl(
        self, *args: str, check: bool = True, timeout: float | None = None
    ) -> subprocess.CompletedProcess[str]:
        """Run systemctl; a failure raises RuntimeCommandError unless check=False."""
        return _run([*self.systemctl, *args], check=check, timeout=timeout)

    def show(self, units: Sequence[str], props: Sequence[str]) -> dict[str, dict[str, str]]:
        """`systemctl show` of several units: {unit: {property: value}}."""
        if not units:
            return {}
        result = self._show(units, props)
        # systemctl prints blocks in argument order; map aliases back to what was asked.
        return {unit: result.get(unit, {}) for unit in units}

    def _show(self, args: Sequence[str], props: Sequence[str]) -> dict[str, dict[str, str]]:
        out = self.ctl(
            "show", "--timestamp=unix", "-p", ",".join(("Id", *props)), "--", *args
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
        return state in ("running", "degraded", "starting", "initializing", "maintenance")

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
        argv += [a for u in units for a in ("-u", u)]
        return argv + (["-f"] if follow else [])


def manager(scope: str | None = None, env: Mapping[str, str] | None = None) -> Manager:
    """The manager for `scope` (default: system for root, user otherwise)."""
    env = os.environ if env is None else env
    scope = scope or paths.default_scope()
    flag = ["--user"] if scope == "user" else []
    if scope == "system":
        unit_dir, config, runtime = Path("/etc/systemd/system"), Path("/etc"), Path("/run")
    else:
        config = Path(env.get("XDG_CONFIG_HOME") or Path.home() / ".config")
        unit_dir = config / "systemd" / "user"
        runtime = Path(env.get("XDG_RUNTIME_DIR") or f"/run/user/{os.getuid()}")
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
    return Manager(
        scope=scope,
        unit_dir=Path(env.get("HOLOSC_UNIT_DIR") or unit_dir),
        config_dir=Path(env.get("HOLOSC_CONFIG_DIR") or config / "holos"),
        state_dir=paths.state_root(scope),
        runtime_dir=Path(env.get("HOLOSC_RUNTIME_DIR") or runtime / "holos"),
        systemctl=tuple(systemctl),
        journalctl=tuple(journalctl),
    )


def _run(
    argv: Sequence[str], *, check: bool, timeout: float | None
) -> subprocess.CompletedProcess[str]:
    try:
        result = subprocess.run(
            argv, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL
        )
    except FileNotFoundError as exc:
        raise _error(f"{argv[0]} not found", "holosc needs systemd") from exc
    except subprocess.TimeoutExpired as exc:
        raise _error(f"{shlex.join(argv)} timed out after {timeout} s") from exc
    if check and result.returncode != 0:
        detail = (result.stderr or result.stdout).strip().splitlines()
        raise _error(
            f"{shlex.join(argv)} failed (exit {result.returncode})"
            + (f": {detail[-1]}" if detail else "")
        )
    return result


def _error(message: str, hint: str | None = None) -> RuntimeCommandError:
    return RuntimeCommandError(message, [Diagnostic(message, file="holosc", hint=hint)])
