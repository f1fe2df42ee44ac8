"""The units find this installation's runtime helpers without root (host/helpers.py).

`install` and `up` write an ExecSearchPath= drop-in for the project's services into the
manager's unit directory, naming the directory of this holosc's helpers; the compiled
output never holds it. Booted proof on systemd 252 and 257, for a user's venv, pipx and
`pip install --user`, is in tests/distro/test_rootless.py; the README's manual steps are
checked against pyproject's entry points here.
"""

from __future__ import annotations

import os
import re
import shutil
import tomllib
from pathlib import Path

import pytest

from holosc.core.render.escape import unit_search_path
from holosc.host import helpers, systemd
from tests.conftest import EXAMPLES, REPO, run_holosc


def _env(root: Path) -> dict[str, str]:
    return {
        "HOLOSC_UNIT_DIR": str(root / "units"),
        "HOLOSC_CONFIG_DIR": str(root / "config"),
        "HOLOSC_STATE_DIR": str(root / "state"),
        "HOLOSC_RUNTIME_DIR": str(root / "run"),
        "HOLOSC_SYSTEMCTL": "true",  # no manager: install only writes
    }


def test_entry_points_are_the_helpers_everyone_lists() -> None:
    """pyproject's entry points, doctor's checks, scripts/setup.sh's links and the README's
    manual steps name the same helpers (the README once linked 2 of them)."""
    scripts = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["scripts"]
    entry = sorted(n for n in scripts if n != "holosc")
    assert sorted(helpers.HELPERS) == entry
    setup = (REPO / "scripts" / "setup.sh").read_text()
    linked = re.search(r"for helper in ([^;]+); do", setup)
    assert linked and sorted(linked[1].split()) == entry
    readme = (REPO / "README.md").read_text()
    manual = readme.split("### Other distributions", 1)[1].split("\n### ", 1)[0]
    braces = re.search(r"holos-\{([^}]+)\}", manual)
    assert braces and sorted(f"holos-{n}" for n in braces[1].split(",")) == entry, manual


def test_install_points_the_units_at_this_installation(tmp_path: Path) -> None:
    project = tmp_path / "p"
    shutil.copytree(EXAMPLES / "three-tier", project)
    env = _env(tmp_path)
    result = run_holosc("install", cwd=project, env=env)
    assert result.returncode == 0, result.stderr
    own = helpers.installed_dir()
    assert own is not None and (own / "holos-seed").is_file()
    drop_in = tmp_path / "units" / "holos-shop-.service.d" / "50-holos-helpers.conf"
    assert drop_in.read_text().splitlines()[1:] == [
        "[Service]",
        f"ExecSearchPath={own}:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    ]
    dry = run_holosc("install", "--dry-run", cwd=project, env=env)
    assert f"would write {drop_in}" in dry.stdout
    # The compiled output holds nothing of this host: no drop-in, no path of it.
    out = tmp_path / "deploy"
    assert run_holosc("build", "-o", str(out), cwd=project).returncode == 0
    assert not list(out.glob("*.d"))
    assert not any(str(own).encode() in p.read_bytes() for p in out.rglob("*") if p.is_file())
    # uninstall takes it away with the units.
    result = run_holosc("uninstall", cwd=project, env=env)
    assert result.returncode == 0, result.stderr
    assert not drop_in.parent.exists()


def test_search_path_entries_systemd_cannot_carry_are_refused() -> None:
    assert unit_search_path(["/a b", "/usr/bin"]) == "/a b:/usr/bin"
    for bad in ("/a:b", "/a%b", "/a\\b", "relative"):
        with pytest.raises(ValueError):
            unit_search_path([bad])


def test_root_runs_only_helpers_nobody_else_can_change(tmp_path: Path) -> None:
    """The system manager runs the helpers as root: a directory another user can write
    (or owns) is not named in its drop-in, and doctor says what to do instead."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name in helpers.HELPERS:
        (bin_dir / name).write_text("#!/bin/sh\n")
        (bin_dir / name).chmod(0o755)
    os.chmod(tmp_path, 0o755)
    assert helpers.trusted_by_root(bin_dir)  # root's below /tmp (sticky: others cannot swap it)
    bin_dir.chmod(0o777)
    assert not helpers.trusted_by_root(bin_dir)
    bin_dir.chmod(0o755)
    os.chown(bin_dir / "holos-seed", 65534, 65534)
    assert not helpers.trusted_by_root(bin_dir)


def test_up_says_what_to_do_before_starting_anything(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No helper where systemd looks and none of this installation's usable (as when
    root runs a user's venv): one line with what to do, nothing installed. In-process
    with the lookups pointed at empty directories, since this machine has the helpers."""
    from holosc.tools import doctor

    monkeypatch.setattr(helpers, "SYSTEMD_PATH", str(tmp_path / "empty"))
    monkeypatch.setattr(helpers, "usable_dir", lambda manager: None)
    monkeypatch.setattr(helpers, "installed_dir", lambda: tmp_path / "venv" / "bin")
    monkeypatch.setattr(helpers, "trusted_by_root", lambda directory: False)
    manager = systemd.manager("system", _env(tmp_path))
    failed = doctor.preflight(manager, {"HOLOSC_SYSTEMCTL": "true"})
    lines = [c for c in failed if c.name.startswith("holos-")]
    assert len(lines) == 1, failed
    assert lines[0].name == ", ".join(helpers.HELPERS)
    assert f"this holosc's are in {tmp_path / 'venv' / 'bin'}" in lines[0].detail
    assert (lines[0].hint or "").startswith("use your own manager (holosc --user")
