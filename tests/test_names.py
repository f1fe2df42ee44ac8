"""Names that become paths: every command refuses a project, service or instance name that
is not a DNS label, whether it comes from the command line or from an installed lock or
manifest, before it touches a file or runs systemctl.

The manager's directories are the test's (HOLOSC_*_DIR), with a victim tree and a second
installed project beside them; systemctl is a script that only records that it ran, since
the point is that no command gets that far (nothing here needs a real systemd).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import NamedTuple

import pytest
from typer.testing import CliRunner

from holosc.cli import app
from holosc.core import names

HOSTILE = ["/some/dir", ".", "..", "a/b", "-x", "", "Web", "web\n", "a" * 64, "x/../.."]


def snapshot(root: Path) -> dict[str, object]:
    """Every path under root with its type and contents (symlinks not followed)."""
    result: dict[str, object] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            path = Path(dirpath, name)
            rel = str(path.relative_to(root))
            if name.startswith(".") and name.endswith(".lock"):
                continue  # a project's flock file (project_lock.py): taken before checks
            if name == "systemctl.log":
                # Read-only queries (is the manager up?) may come first; nothing that acts.
                calls = path.read_text().splitlines()
                acting = [
                    c for c in calls if c.split()[:1] not in (["is-system-running"], ["show"])
                ]
                if acting:
                    result[rel] = ("calls", acting)
                continue

            if path.is_symlink():
                result[rel] = ("link", os.readlink(path))
            elif path.is_file():
                result[rel] = ("file", path.read_bytes())
            else:
                result[rel] = ("dir",)
    return result


@pytest.fixture
def host(tmp_path: Path) -> Path:
    """config/ with an installed project `good`, state/ with its disks, and a victim."""
    config = tmp_path / "config"
    good = config / "good"
    (good / "web-0").mkdir(parents=True)
    (good / "web-0" / "launch.sh").write_text("#!/bin/bash\n")
    (good / "installed.json").write_text(
        json.dumps({"units": {"holos-good.target": "x"}, "files": {"web-0/launch.sh": "x"}})
    )
    (good / "holos.lock.json").write_text(
        json.dumps({"instances": {"web-0": {"ip": "10.10.0.2", "ssh_port": 20000, "user": "u"}}})
    )
    for sub in ("units", "runtime", "state/instances/good/web-0", "state/ssh/good"):
        (tmp_path / sub).mkdir(parents=True, exist_ok=True)
    (tmp_path / "units" / "holos-good.target").write_text("[Unit]\n")
    (tmp_path / "victim" / "x").mkdir(parents=True)
    (tmp_path / "victim" / "x" / "precious").write_text("keep me\n")
    (tmp_path / "victim" / "installed.json").write_text('{"units": {}, "files": {}}')
    ctl = tmp_path / "systemctl"
    ctl.write_text(f'#!/bin/sh\necho "$@" >> {tmp_path}/systemctl.log\necho running\n')
    ctl.chmod(0o755)
    return tmp_path


class Result(NamedTuple):
    returncode: int
    stderr: str
    stdout: str


def run(host: Path, *args: str) -> Result:
    """The command in this process (a few ms, not a Python start-up per command)."""
    env = dict(
        HOLOSC_UNIT_DIR=str(host / "units"),
        HOLOSC_CONFIG_DIR=str(host / "config"),
        HOLOSC_STATE_DIR=str(host / "state"),
        HOLOSC_RUNTIME_DIR=str(host / "runtime"),
        HOLOSC_SYSTEMCTL=str(host / "systemctl"),
        HOLOSC_JOURNALCTL=str(host / "systemctl"),
    )
    cwd = os.getcwd()
    os.chdir(host / "victim" / "x")  # no holos.yaml here: only the named project counts
    try:
        result = CliRunner().invoke(app, list(args), env=env)
    finally:
        os.chdir(cwd)
    if result.exception and not isinstance(result.exception, SystemExit):
        raise result.exception
    return Result(result.exit_code, result.stderr, result.stdout)


@pytest.fixture(autouse=True)
def no_exec(monkeypatch: pytest.MonkeyPatch) -> None:
    """exec and logs end in os.execvp: here that would replace the test process."""

    def refuse(*argv: object) -> None:
        raise AssertionError(f"exec reached: {argv}")

    monkeypatch.setattr(os, "execvp", refuse)


def commands(bad: str) -> list[list[str]]:
    """Every command that takes a name, with `bad` in each name position."""
    return [
        ["down", "-p", bad],
        ["down", "--volumes", f"--project={bad}"],
        ["stop", "-p", bad],
        ["start", "-p", bad],
        ["uninstall", f"--project={bad}"],
        ["logs", "-p", bad, "web"],
        ["logs", "--console", "-p", bad, "web-0"],
        ["exec", "-p", bad, "web-0", "--", "true"],
        ["console", "-p", bad, "web-0"],
        ["ps", "-p", bad],
        ["stop", "-p", "good", "--", bad],
        ["start", "-p", "good", "--", bad],
        ["logs", "-p", "good", "--", bad],
        ["logs", "--console", "-p", "good", "--", bad],
        ["exec", "-p", "good", "--", bad, "true"],
        ["console", "-p", "good", "--", bad],
    ]


@pytest.mark.parametrize("bad", HOSTILE, ids=repr)
def test_every_command_refuses_a_hostile_name_and_touches_nothing(host: Path, bad: str) -> None:
    before = snapshot(host)
    for argv in commands(bad):
        result = run(host, *argv)
        assert result.returncode == 2, (argv, result.returncode, result.stderr)
        assert "not a DNS label" in result.stderr or "invalid" in result.stderr, (
            argv,
            result.stderr,
        )
        assert "Traceback" not in result.stderr
        assert snapshot(host) == before, argv
        assert not (host / "systemctl.log").exists(), (argv, "systemctl ran")


@pytest.mark.parametrize(
    ("manifest", "lock"),
    [
        ({"units": {"../../victim/x/precious": "x"}, "files": {}}, None),
        ({"units": {"holos-good.target": "x"}, "files": {"../../victim/x/precious": "x"}}, None),
        ({"units": {"holos-good.target": "x"}, "files": {"../victim/launch.sh": "x"}}, None),
        ({"units": {"holos-good-image-alpine-3.21/../../x.service": "x"}, "files": {}}, None),
        (None, {"instances": {"../../victim/x": {"ip": "10.10.0.2"}}}),
        (None, {"instances": {"-rf": {"ip": "10.10.0.2"}}}),
    ],
)
def test_names_from_an_installed_lock_or_manifest_are_checked(
    host: Path, manifest: dict[str, object] | None, lock: dict[str, object] | None
) -> None:
    good = host / "config" / "good"
    if manifest is not None:
        (good / "installed.json").write_text(json.dumps(manifest))
    if lock is not None:
        (good / "holos.lock.json").write_text(json.dumps(lock))
    before = snapshot(host)
    readers = [["down", "-p", "good"], ["stop", "-p", "good"]]
    if manifest is not None:  # uninstall reads the manifest, not the lock
        readers.append(["uninstall", "-p", "good"])
    else:
        readers += [["logs", "-p", "good", "web"], ["exec", "-p", "good", "web-0", "true"]]
    for argv in readers:
        result = run(host, *argv)
        assert result.returncode == 2, (argv, result.returncode, result.stderr)
        assert "invalid" in result.stderr and "Traceback" not in result.stderr, result.stderr
        assert snapshot(host) == before, argv
    assert (host / "victim" / "x" / "precious").read_text() == "keep me\n"


def test_image_units_with_a_dotted_tag_are_the_projects(host: Path) -> None:
    """Registry tags such as alpine:3.21 give image units with a dot in their name."""
    units = {"holos-good.target": "x", "holos-good-image-alpine-3.21.service": "x"}
    (host / "config" / "good" / "installed.json").write_text(
        json.dumps({"units": units, "files": {"web-0/launch.sh": "x"}})
    )
    result = run(host, "stop", "-p", "good")
    assert result.returncode == 0, result.stderr


def test_ps_lists_only_projects_with_label_names(host: Path) -> None:
    (host / "config" / "-x").mkdir()
    (host / "config" / "-x" / "installed.json").write_text("{}")
    result = run(host, "ps", "--json")
    assert result.returncode == 0, result.stderr
    assert {row["project"] for row in json.loads(result.stdout)} == {"good"}


def test_the_one_check() -> None:
    for good in ("a", "web-0", "a" * 63, "0"):
        assert names.check("project", good) == good
    for bad in HOSTILE:
        with pytest.raises(names.NameError_):
            names.check("project", bad)
    with pytest.raises(names.NameError_):
        names.check_instance("web")
