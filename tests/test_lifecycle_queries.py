"""What `ps` and an unchanged `up` ask of systemd (issue #17): counted through a
systemctl wrapper, against the private systemd and the busybox guests of test_lifecycle."""

from __future__ import annotations

from pathlib import Path

from tests.systemd_harness import PrivateSystemd
from tests.test_lifecycle import project, systemd  # noqa: F401  (fixtures)


def run(sd: PrivateSystemd, where: Path, tmp: Path, *args: str) -> tuple[str, list[str]]:
    """holosc's output and the systemctl command lines it ran, one string each."""
    log = tmp / "systemctl.log"
    wrapper = tmp / "systemctl"
    wrapper.write_text(f'#!/bin/sh\necho "$*" >> {log}\nexec systemctl "$@"\n')
    wrapper.chmod(0o755)
    log.write_text("")
    result = sd.holosc(
        *args,
        cwd=where,
        HOLOSC_SSH_KEY=str(where.parent / "key"),
        HOLOSC_SYSTEMCTL=str(wrapper),
    )
    assert result.returncode == 0, result.stderr
    return result.stdout + result.stderr, log.read_text().splitlines()


def about_units(calls: list[str]) -> list[str]:
    """The verbs of the calls that name the project's units (holosc also asks the manager
    where its directories are, which names no unit of the project)."""
    return [c.split()[0] for c in calls if "holos-life-" in c]


def verbs(calls: list[str]) -> list[str]:
    return [c.split()[0] for c in calls]


def test_ps_of_stopped_units_and_unchanged_up(
    systemd: PrivateSystemd,  # noqa: F811
    project: Path,  # noqa: F811
    tmp_path: Path,
) -> None:
    run(systemd, project, tmp_path, "install")
    out, calls = run(systemd, project, tmp_path, "ps")
    # One query for every unit, none loaded by it (by name, systemd loads each first).
    assert about_units(calls) == ["show"], calls
    assert out.count("inactive/dead") == 3, out
    # `ps SERVICE...` as docker compose's: services or instances of this project.
    out, calls = run(systemd, project, tmp_path, "ps", "web")
    assert out.count("inactive/dead") == 2 and " db-0 " not in out, out
    assert about_units(calls) == ["show"], calls
    out, _ = run(systemd, project, tmp_path, "ps", "db", "web-1")
    assert [line.split()[1] for line in out.splitlines()[1:]] == ["db-0", "web-1"], out
    ghost = systemd.holosc("ps", "ghost", cwd=project, HOLOSC_SSH_KEY=str(project.parent / "key"))
    assert ghost.returncode != 0 and "no such service or instance" in ghost.stderr, ghost.stderr
    loaded = systemd.systemctl("list-units", "--all", "--plain", "--no-legend", "holos-life-*@*")
    assert not loaded.stdout.strip(), loaded.stdout
    _, calls = run(systemd, project, tmp_path, "up")
    assert "start" in verbs(calls)  # install reloaded already: nothing changed since
    again, calls = run(systemd, project, tmp_path, "up")
    assert "nothing changed" in again, again
    assert about_units(calls) == ["show"], calls
    assert "daemon-reload" not in verbs(calls) and "start" not in verbs(calls), calls
    out, calls = run(systemd, project, tmp_path, "ps")
    assert about_units(calls) == ["show"] and out.count("active/running") == 3, out
    run(systemd, project, tmp_path, "down")
