"""`holosc build` writes only what it owns and swaps the whole output in at once.

- Ownership (issue 9, class 2): nothing is written, replaced, deleted or printed through
  a symlink under the output directory, and a stale file is deleted only when its bytes
  are still what the lock says holosc wrote.
- Atomicity (class 4): a real build is SIGKILLed before each of its file-system changes
  (tests/killpoint.py); after every kill the output directory is exactly the old or
  exactly the new output, foreign files included, and the next build cleans up.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests import killpoint
from tests.conftest import EXAMPLES, REPO


def holosc(*args: str, cwd: Path, killpoint: int | None = None, count: Path | None = None):  # type: ignore[no-untyped-def]
    env = dict(os.environ, PYTHONPATH=str(REPO))
    argv = [sys.executable, "-m", "holosc", *args]
    if killpoint is not None:
        argv = [sys.executable, "-m", "tests.killpoint", str(killpoint), *args]
        env["KILLPOINT_COUNT"] = str(count)
    return subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=300)


@pytest.fixture
def project(tmp_path: Path) -> Path:
    shutil.copytree(EXAMPLES / "three-tier", tmp_path / "repo" / "p")
    return tmp_path / "repo" / "p"


def snapshot(root: Path) -> dict[str, object]:
    """Every entry under root: type, mode and bytes or link target (never followed)."""
    result: dict[str, object] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            path = Path(dirpath, name)
            st = path.lstat()
            rel = str(path.relative_to(root))
            if path.is_symlink():
                result[rel] = ("link", os.readlink(path))
            elif path.is_file():
                result[rel] = ("file", st.st_mode & 0o7777, path.read_bytes())
            else:
                result[rel] = ("dir", st.st_mode & 0o7777)
    return result


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def edit_lock(out: Path, **files: str) -> None:
    lock = json.loads((out / "holos.lock.json").read_text())
    lock["files"].update(files)
    (out / "holos.lock.json").write_text(json.dumps(lock))


# --- class 2: ownership -------------------------------------------------------------


def test_a_lock_cannot_delete_through_a_symlinked_directory(project: Path) -> None:
    """The reported attack: deploy/cache -> ../../victim and a lock listing cache/.bashrc
    (with the victim's digest) made `build` delete victim/.bashrc."""
    victim = project.parent.parent / "victim"
    (victim / "web-0").mkdir(parents=True)
    bashrc = b"alias ls='ls --color'\n"
    (victim / ".bashrc").write_bytes(bashrc)
    (victim / "web-0" / "launch.sh").write_bytes(b"#!/bin/sh\n")
    assert holosc("build", cwd=project).returncode == 0
    out = project / "deploy"
    relative = os.path.relpath(victim, out)  # ../../../victim
    (out / "cache").symlink_to(relative)
    (out / "shop2").symlink_to(relative)
    edit_lock(
        out,
        **{
            "cache/.bashrc": sha(bashrc),
            "shop2/web-0/launch.sh": sha(b"#!/bin/sh\n"),  # the shape of compiled output
            "../victim/.bashrc": sha(bashrc),
        },
    )
    before = snapshot(victim)
    result = holosc("build", cwd=project)
    assert result.returncode == 0, result.stderr
    assert snapshot(victim) == before
    assert os.readlink(out / "cache") == relative, "a foreign symlink is kept"


def test_stale_files_go_only_when_their_bytes_are_what_holosc_wrote(project: Path) -> None:
    assert holosc("build", cwd=project).returncode == 0
    out = project / "deploy"
    (out / "shop" / "web-1" / "user-data").write_text("edited by hand\n")
    (out / "holos-shop-mine.service").write_text("[Unit]\n")  # foreign, not in the lock
    text = (project / "holos.yaml").read_text().replace("replicas: 2", "replicas: 1")
    (project / "holos.yaml").write_text(text)
    result = holosc("build", cwd=project)
    assert result.returncode == 0, result.stderr
    assert not (out / "shop" / "web-1" / "launch.sh").exists()
    assert (out / "shop" / "web-1" / "user-data").read_text() == "edited by hand\n"
    assert (out / "holos-shop-mine.service").exists()
    assert "kept shop/web-1/user-data" in result.stderr


@pytest.mark.parametrize(
    "link", ["holos-shop.target", "shop", "shop/web-0", "shop/web-0/user-data", "holos.lock.json"]
)
def test_never_writes_through_or_over_a_symlink(project: Path, link: str) -> None:
    victim = project.parent.parent / "victim"
    (victim / "web-0").mkdir(parents=True)
    (victim / "seed.iso").write_text("victim\n")
    (victim / "web-0" / "launch.sh").write_text("victim\n")
    assert holosc("build", cwd=project).returncode == 0
    out = project / "deploy"
    target = out / link
    shutil.rmtree(target) if target.is_dir() else target.unlink()
    is_file = link.endswith(("target", "json", "data"))
    target.symlink_to(victim / ("seed.iso" if is_file else ""))
    (project / "holos.yaml").write_text((project / "holos.yaml").read_text().replace("60s", "90s"))
    before, victim_before = snapshot(out), snapshot(victim)
    for args in (["build"], ["build", "--diff"], ["build", "--check"]):
        result = holosc(*args, cwd=project)
        assert result.returncode == 4, (args, result.stdout, result.stderr)
        assert "symlink" in result.stderr and "Traceback" not in result.stderr
        assert "victim" not in result.stdout, "--diff printed what the symlink points to"
        assert snapshot(out) == before and snapshot(victim) == victim_before


def test_diff_never_prints_what_a_symlink_points_to(project: Path) -> None:
    secret = project.parent.parent / "id_rsa"
    secret.write_text("-----BEGIN OPENSSH PRIVATE KEY-----\nsecret\n")
    assert holosc("build", cwd=project).returncode == 0
    out = project / "deploy"
    (out / "holos-shop-old.service").symlink_to(secret)  # a stale path the lock lists
    edit_lock(out, **{"holos-shop-old.service": sha(secret.read_bytes())})
    (project / "holos.yaml").write_text((project / "holos.yaml").read_text().replace("60s", "90s"))
    result = holosc("build", "--diff", cwd=project)
    assert result.returncode == 1, result.stderr
    assert "secret" not in result.stdout and "PRIVATE KEY" not in result.stdout
    assert holosc("build", cwd=project).returncode == 0
    assert (out / "holos-shop-old.service").is_symlink() and secret.exists()


def test_new_nested_and_dot_output_directories(project: Path, tmp_path: Path) -> None:
    nested = tmp_path / "a" / "b" / "deploy"
    assert holosc("build", "-o", str(nested), cwd=project).returncode == 0
    assert (nested / "holos.lock.json").is_file()
    here = tmp_path / "here"
    here.mkdir()
    result = holosc("build", "-f", str(project / "holos.yaml"), "-o", ".", cwd=here)
    assert result.returncode == 0, result.stderr
    assert (here / "holos.lock.json").is_file()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a", "here", "repo"]


def test_output_directory_that_is_a_symlink_is_refused(project: Path) -> None:
    elsewhere = project.parent.parent / "elsewhere"
    elsewhere.mkdir()
    (project / "deploy").symlink_to("../../elsewhere")
    result = holosc("build", cwd=project)
    assert result.returncode == 4 and "is a symlink" in result.stderr, result.stderr
    assert not any(elsewhere.iterdir())


# --- class 4: atomicity ------------------------------------------------------------


SMALL = """\
name: kp
services:
  db:
    image: ./disk.qcow2
    stop_grace_period: 20s
  web:
    image: ./disk.qcow2
    replicas: 2
    depends_on: [db]
"""


def test_a_build_killed_at_any_step_leaves_old_or_new_output(tmp_path: Path) -> None:
    """v1 -> v2 changes a unit, the lock and removes an instance (19 files, ~60 steps)."""
    project = tmp_path / "p"
    project.mkdir()
    out, saved = project / "deploy", tmp_path / "saved"
    env: dict[str, str] = {}

    def build(kill_at: int = 0) -> tuple[int, int]:
        return killpoint.run(kill_at, ["build"], project, env)

    v2 = SMALL.replace("replicas: 2", "replicas: 1").replace("20s", "30s")
    (project / "holos.yaml").write_text(SMALL)
    assert build()[0] == 0
    # Foreign entries that must survive every kill: a file, a file in a compiled
    # directory, a symlink and a directory of their own.
    (out / "README.md").write_text("mine\n")
    (out / "kp" / "notes.txt").write_text("mine too\n")
    (out / "latest").symlink_to("kp")
    (out / "docs").mkdir()
    (out / "docs" / "a.txt").write_text("a\n")
    shutil.copytree(out, saved, symlinks=True)
    old = snapshot(out)
    (project / "holos.yaml").write_text(v2)
    status, steps = build()
    assert status == 0
    new = snapshot(out)
    assert new != old and steps > 10
    siblings = sorted(p.name for p in project.iterdir())
    for n in range(1, steps + 1):
        shutil.rmtree(out)
        shutil.copytree(saved, out, symlinks=True)  # the old output again
        assert snapshot(out) == old
        status, _ = build(n)
        assert os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL, status
        now = snapshot(out) if out.exists() else None
        assert now in (old, new), f"killed before step {n} of {steps}: mixed output"
        assert build()[0] == 0, f"the build after a kill before step {n} failed"
        assert snapshot(out) == new
        assert sorted(p.name for p in project.iterdir()) == siblings, "leftovers stayed"
    print(f"killed a build before each of its {steps} file-system steps")
