"""The code base stays clean: ruff (lint and format), mypy --strict and shellcheck."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.conftest import REPO, require_tool

PY_DIRS = ["holosc", "runtime-helpers", "tests", "bench"]


def _run(*argv: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", *argv],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=600,
        env=env,
    )


def test_ruff_check() -> None:
    result = _run("ruff", "check", *PY_DIRS)
    assert result.returncode == 0, result.stdout + result.stderr


def test_ruff_format() -> None:
    result = _run("ruff", "format", "--check", *PY_DIRS)
    assert result.returncode == 0, result.stdout + result.stderr


def test_mypy_strict_compiler(tmp_path: Path) -> None:
    """holosc uses the image cache of holos_runtime (installed from runtime-helpers/)."""
    (tmp_path / "holos_runtime").symlink_to(REPO / "runtime-helpers")
    result = _run("mypy", "holosc", env=dict(os.environ, MYPYPATH=str(tmp_path)))
    assert result.returncode == 0, result.stdout + result.stderr


def test_mypy_strict_runtime_helpers(tmp_path: Path) -> None:
    """runtime-helpers/ is installed as the package holos_runtime; check it under that name."""
    (tmp_path / "holos_runtime").symlink_to(REPO / "runtime-helpers")
    env = dict(os.environ, MYPYPATH=str(tmp_path))
    result = _run(
        "mypy", "--config-file", str(REPO / "pyproject.toml"), "-p", "holos_runtime", env=env
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_shellcheck_of_the_setup_and_build_scripts() -> None:
    """The scripts people and CI run by hand (templates are checked in test_real_tools)."""
    shellcheck = require_tool("shellcheck")
    scripts = [
        REPO / "scripts" / "setup.sh",
        REPO / "tests" / "distro" / "build-root.sh",
    ]
    result = subprocess.run(
        [shellcheck, *map(str, scripts)], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stdout + result.stderr
