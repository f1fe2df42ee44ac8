"""`pip install .` ships the compiler, its templates and schema, and the runtime helpers."""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

from tests.conftest import REPO


def test_wheel_contains_templates_helpers_and_commands(tmp_path: Path) -> None:
    src = tmp_path / "src"
    shutil.copytree(
        REPO,
        src,
        ignore=shutil.ignore_patterns(
            ".git",
            "build",
            "*.egg-info",
            "__pycache__",
            ".*cache",
            "golden",
            ".hypothesis",
            ".venv",
        ),
    )
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "-q",
            "-w",
            str(tmp_path / "dist"),
            str(src),
        ],
        check=True,
        timeout=300,
    )
    (wheel,) = (tmp_path / "dist").glob("holosc-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    for required in (
        "holosc/templates/launch.sh.j2",
        "holosc/templates/volumes.sh.j2",
        "holosc/core/validate/holos.schema.json",
        "holos_runtime/qmp_stop.py",
        "holos_runtime/health.py",
        "holos_runtime/image.py",
        "holos_runtime/fetch.py",
        "holos_runtime/imagecache.py",
        "holos_runtime/seed.py",
        "holos_runtime/terminal.py",  # holosc.errors imports it
        "holos_runtime/consolelog.py",
        "holosc/cli/__init__.py",
    ):
        assert required in names, f"{required} missing from {wheel.name}"
    entry_points = next(n for n in names if n.endswith("entry_points.txt"))
    text = zipfile.ZipFile(wheel).read(entry_points).decode()
    for script in (
        "holosc = holosc.cli:main",
        "holos-qmp-stop = holos_runtime.qmp_stop:main",
        "holos-health = holos_runtime.health:main",
        "holos-image = holos_runtime.image:main",
        "holos-bake = holos_runtime.bake:main",
        "holos-console-log = holos_runtime.consolelog:main",
        "holos-seed = holos_runtime.seed:main",
        "holos-switch = holos_runtime.switch:main",
    ):
        assert script in text
