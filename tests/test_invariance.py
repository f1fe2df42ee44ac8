"""Same input, same bytes: across runs, timezones, working directories and hash seeds."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from holosc.core.render.units import serialize
from tests.conftest import EXAMPLES, REPO, compile_example, example_names


@pytest.mark.parametrize("name", example_names())
def test_compile_twice_is_identical(name: str) -> None:
    assert compile_example(name) == compile_example(name)


def _tree_digest(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        + oct(p.stat().st_mode & 0o777)
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def _machine(root: Path, index: int) -> dict[str, str]:
    """The environment of one "machine": its own user, home, state directory and keys."""
    home = root / f"home{index}"
    state = root / f"state{index}"
    (home / ".ssh").mkdir(parents=True)
    # A project key already on this machine, as after `holosc up`: it must not leak.
    for project in ("shop", "tiny", "notes", "ml", "dockerized"):
        key = state / "ssh" / project / "id_ed25519"
        key.parent.mkdir(parents=True)
        subprocess.run(
            ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", f"u{index}", "-f", str(key)],
            check=True,
        )
    return {
        "HOME": str(home),
        "USER": f"builder{index}",
        "LOGNAME": f"builder{index}",
        "XDG_CONFIG_HOME": str(home / ".config"),
        "HOLOSC_STATE_DIR": str(state),
    }


def test_cli_output_independent_of_the_building_host(tmp_path: Path) -> None:
    """`holosc build` of every example on three "machines": different state directories
    (each with its own project keys), users, homes, working directories, TZ, locale and
    hash seeds. The bytes are identical and carry nothing of any machine."""
    digests = []
    for i, (tz, seed, cwd) in enumerate(
        [
            ("UTC", "0", REPO),
            ("Asia/Tokyo", "1", tmp_path),
            ("America/Los_Angeles", "random", Path("/")),
        ]
    ):
        out = tmp_path / f"out{i}"
        env = {k: v for k, v in os.environ.items() if not k.startswith("HOLOSC_")}
        env |= _machine(tmp_path, i) | {
            "TZ": tz,
            "PYTHONHASHSEED": seed,
            "LC_ALL": "C.UTF-8" if i else "C",
        }
        for name in example_names():
            result = subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "holosc",
                    "build",
                    "-f",
                    str(EXAMPLES / name / "holos.yaml"),
                    "-o",
                    str(out / name),
                ],
                cwd=cwd,
                env=env,
                capture_output=True,
                text=True,
                timeout=120,
            )
            assert result.returncode == 0, result.stderr
        digests.append(_tree_digest(out))
        for path in out.rglob("*"):
            if path.is_file():
                data = path.read_bytes()
                for leak in (b"ssh-ed25519", b"PRIVATE KEY", b"builder", str(tmp_path).encode()):
                    assert leak not in data, (path, leak)
    assert digests[0] == digests[1] == digests[2]
    assert len(digests[0]) > 20


def _git(cwd: Path, *args: str) -> str:
    ident = [
        "-c",
        "user.name=ci",
        "-c",
        "user.email=ci@example.invalid",
        "-c",
        "init.defaultBranch=main",
    ]
    result = subprocess.run(
        ["git", *ident, *args], cwd=cwd, capture_output=True, text=True, timeout=60, check=True
    )
    return result.stdout


def test_check_on_another_machine_after_commit(tmp_path: Path) -> None:
    """Machine A compiles every example and commits the output; machine B (another
    checkout path, user, home and state directory with its own keys) runs
    `holosc build --check` on its clone: nothing to do, exit 0."""
    holosc = [sys.executable, "-m", "holosc", "build"]
    base = {k: v for k, v in os.environ.items() if not k.startswith("HOLOSC_")}
    repo = tmp_path / "machine-a" / "repo"
    shutil.copytree(EXAMPLES, repo / "examples")
    env_a = base | _machine(tmp_path / "machine-a", 0)
    for name in example_names():
        result = subprocess.run(
            holosc, cwd=repo / "examples" / name, env=env_a, capture_output=True, text=True
        )
        assert result.returncode == 0, result.stderr
    _git(repo, "init", "-q")
    _git(repo, "add", "-A")
    _git(repo, "commit", "-q", "-m", "compiled on machine A")
    assert "seed.iso" not in _git(repo, "ls-files")

    clone = tmp_path / "machine-b" / "work" / "checkout"
    _git(tmp_path, "clone", "-q", str(repo), str(clone))
    env_b = base | _machine(tmp_path / "machine-b", 1)
    for name in example_names():
        check = subprocess.run(
            [*holosc, "--check"],
            cwd=clone / "examples" / name,
            env=env_b,
            capture_output=True,
            text=True,
        )
        assert check.returncode == 0, f"{name} on machine B:\n{check.stderr}"
    assert _git(clone, "status", "--porcelain") == ""


def _parse_unit(text: str) -> list[tuple[str, list[tuple[str, str]]]]:
    sections: list[tuple[str, list[tuple[str, str]]]] = []
    for line in text.splitlines():
        if line.startswith("["):
            sections.append((line[1:-1], []))
        elif "=" in line and not line.startswith("#"):
            key, _, value = line.partition("=")
            sections[-1][1].append((key, value))
    return sections


def test_unit_serializer_round_trips() -> None:
    unit = [
        ("Unit", [("Description", "x"), ("After", "a.service"), ("After", "b.service")]),
        ("Service", [("ExecStart", "/bin/true")]),
        ("Install", []),
    ]
    assert _parse_unit(serialize(unit)) == [(n, list(e)) for n, e in unit]
