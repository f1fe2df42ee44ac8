"""Directories someone else made (issue 22, class 7): holosc never adopts, renames into
place or deletes through a directory another user made or can write.

A real second user: `nobody`, through setpriv (tests run as root, as in CI). The shared
place is a sticky world-writable directory under /tmp, as /tmp itself is.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import EXAMPLES, require_tool, run_holosc

NOBODY = 65534


def as_nobody(*argv: str) -> None:
    """Run argv as the user nobody (uid and gid 65534, no other groups)."""
    setpriv = require_tool("setpriv")
    if os.geteuid() != 0:
        pytest.fail("these tests need root (a second user acts through setpriv), as in CI")
    subprocess.run(
        [setpriv, "--reuid=65534", "--regid=65534", "--clear-groups", *argv],
        check=True,
        capture_output=True,
        timeout=30,
    )


@pytest.fixture
def shared() -> Iterator[Path]:
    """A directory like /tmp: root's, mode 1777, reachable by nobody."""
    path = Path(tempfile.mkdtemp(prefix="holosc-shared-", dir="/tmp"))
    path.chmod(0o1777)
    try:
        yield path
    finally:
        shutil.rmtree(path)


@pytest.fixture
def project(tmp_path: Path) -> Path:
    shutil.copytree(EXAMPLES / "three-tier", tmp_path / "p")
    return tmp_path / "p"


def test_build_refuses_an_output_directory_another_user_made(project: Path, shared: Path) -> None:
    """The README's `build -o /tmp/shop-deploy`, after another user made it first: the
    old code built into it and chowned the output to them, who could swap a launch.sh."""
    out = shared / "shop-deploy"
    as_nobody("mkdir", "-m", "0755", str(out))
    result = run_holosc("build", "-o", str(out), cwd=project)
    assert result.returncode == 4, result.stderr
    assert f"{out} is owned by uid {NOBODY} (nobody), not by you or root" in result.stderr
    assert "hint: remove it, or choose a directory that you or root made" in result.stderr
    assert list(out.iterdir()) == [] and out.stat().st_uid == NOBODY
    assert [p.name for p in shared.iterdir()] == ["shop-deploy"], "no staging left behind"


@pytest.mark.parametrize("kind", ["old", "new"])
def test_a_planted_leftover_is_neither_adopted_nor_deleted(
    project: Path, shared: Path, kind: str
) -> None:
    """`.<dir>.holosc-old-<dead pid>-*` is what a killed build leaves to be renamed back
    into place: one another user planted is left alone, as is a `-new-` one."""
    planted = shared / f".shop-deploy.holosc-{kind}-999999-aaaa"
    as_nobody("mkdir", "-m", "0755", str(planted))
    as_nobody("sh", "-c", f"echo 'touch /tmp/owned' > {planted}/launch.sh")
    result = run_holosc("build", "-o", str(shared / "shop-deploy"), cwd=project)
    assert result.returncode == 0, result.stderr
    out = shared / "shop-deploy"
    assert out.stat().st_uid == 0 and not (out / "launch.sh").exists()
    assert (planted / "launch.sh").read_text() == "touch /tmp/owned\n"
    assert planted.stat().st_uid == NOBODY


def test_directories_others_can_write_on_the_way_are_refused(project: Path, shared: Path) -> None:
    team = shared / "team"
    team.mkdir(mode=0o777)
    team.chmod(0o777)  # past the umask
    result = run_holosc("build", "-o", str(team / "deploy"), cwd=project)
    assert result.returncode == 4, result.stderr
    assert f"{team} is writable by other users (mode 0777)" in result.stderr
    assert f"hint: chmod go-w {team}, or choose a directory only you can write" in result.stderr
    assert not (team / "deploy").exists()
    # The output directory itself: not even sticky, since others could add files to it.
    for mode in (0o1777, 0o775):
        out = shared / f"out-{mode:o}"
        out.mkdir()
        out.chmod(mode)
        result = run_holosc("build", "-o", str(out), cwd=project)
        assert result.returncode == 4 and "writable by other users" in result.stderr
        assert list(out.iterdir()) == []
    # The sticky shared parent is fine: others cannot rename or remove what holosc makes.
    assert run_holosc("build", "-o", str(shared / "mine"), cwd=project).returncode == 0


def test_a_symlink_another_user_planted_on_the_way_is_refused(
    project: Path, shared: Path, tmp_path: Path
) -> None:
    target = tmp_path / "elsewhere"
    target.mkdir()
    as_nobody("ln", "-s", str(target), str(shared / "link"))
    result = run_holosc("build", "-o", str(shared / "link" / "deploy"), cwd=project)
    assert result.returncode == 4, result.stderr
    assert f"{shared / 'link'} is a symlink owned by uid {NOBODY}" in result.stderr
    assert list(target.iterdir()) == []
    # A symlink of a trusted user is followed, and what it leads to is checked.
    (tmp_path / "mylink").symlink_to(target)
    assert run_holosc("build", "-o", str(tmp_path / "mylink" / "d"), cwd=project).returncode == 0
    assert (target / "d" / "holos.lock.json").is_file()


def test_export_and_import_refuse_another_users_directory(
    project: Path, shared: Path, tmp_path: Path
) -> None:
    theirs = shared / "k8s"
    as_nobody("mkdir", "-m", "0755", str(theirs))
    export = run_holosc("export", "kubevirt", "-o", str(theirs), cwd=project)
    assert export.returncode == 4 and "owned by uid 65534" in export.stderr, export.stderr
    assert list(theirs.iterdir()) == []
    xml = EXAMPLES.parent / "tests" / "data" / "libvirt" / "minimal.xml"
    imported = run_holosc("import", "--xml", str(xml), "-o", str(theirs / "holos.yaml"))
    assert imported.returncode == 4 and "owned by uid 65534" in imported.stderr
    assert list(theirs.iterdir()) == []
    # Into the sticky shared directory itself: holosc's file there stays holosc's.
    mine = run_holosc("import", "--xml", str(xml), "-o", str(shared / "holos.yaml"))
    assert mine.returncode == 0, mine.stderr


def test_under_sudo_the_invoking_users_directory_is_theirs(project: Path, shared: Path) -> None:
    """`sudo holosc build` in one's own checkout: root accepts the directories of the
    user who ran sudo (SUDO_UID, as git's safe.directory does) and keeps them theirs."""
    out = shared / "deploy"
    as_nobody("mkdir", "-m", "0755", str(out))
    result = run_holosc("build", "-o", str(out), cwd=project, env={"SUDO_UID": str(NOBODY)})
    assert result.returncode == 0, result.stderr
    assert out.stat().st_uid == NOBODY and (out / "holos.lock.json").is_file()


def test_a_subdirectory_another_user_owns_is_refused(project: Path, tmp_path: Path) -> None:
    """Where a project's launch scripts go (`deploy/shop/web-0/`): a directory there that
    another user owns (left by an older holosc that adopted one) is not kept as theirs."""
    out = tmp_path / "deploy"
    assert run_holosc("build", "-o", str(out), cwd=project).returncode == 0
    os.chown(out / "shop" / "web-0", NOBODY, NOBODY)
    result = run_holosc("build", "-o", str(out), cwd=project)
    assert result.returncode == 4, result.stderr
    assert f"{out / 'shop' / 'web-0'} is owned by uid {NOBODY}" in result.stderr


def test_install_refuses_unit_and_config_directories_of_another_user(
    project: Path, shared: Path
) -> None:
    """What the manager runs is installed there: HOLOSC_CONFIG_DIR (or the unit directory)
    in a place another user made is refused before anything is written."""
    theirs = shared / "etc-holos"
    as_nobody("mkdir", "-m", "0755", str(theirs))
    env = {
        "HOLOSC_UNIT_DIR": str(shared / "units"),
        "HOLOSC_CONFIG_DIR": str(theirs),
        "HOLOSC_STATE_DIR": str(shared / "state"),
        "HOLOSC_RUNTIME_DIR": str(shared / "run"),
        "HOLOSC_SYSTEMCTL": "true",
    }
    result = run_holosc("install", cwd=project, env=env)
    assert result.returncode == 4, result.stderr
    assert f"{theirs} is owned by uid {NOBODY}" in result.stderr
    assert list(theirs.iterdir()) == []
