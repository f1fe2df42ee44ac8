"""Lay compiled output out as systemd and the launch scripts will find it on a host.

Used by the real-tool tests: units under <root>/etc/systemd/system, artifacts under
<root>/etc/holos/<project> (what %E/holos/<project> is for the system manager).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from holosc.core.compiler import Output


def write_output(output: Output, directory: Path) -> None:
    for path, file in output.files.items():
        target = directory / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(file.data)
        target.chmod(file.mode)


def run_seed(seed_dir: Path, state: Path, key: Path, alias: str, out: Path) -> str:
    """Run holos-seed (of this checkout) as the unit's ExecStartPre does; its log."""
    helper = Path(sys.executable).with_name("holos-seed")
    argv = [str(helper), "--instance", seed_dir.name, "--seed-dir", str(seed_dir)]
    argv += ["--state", str(state), "--key", str(key), "--alias", alias, "--out", str(out)]
    result = subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 0, result.stderr
    return result.stderr


def verify_root(output: Output, root: Path, project: str) -> Path:
    """A --root tree for `systemd-analyze verify`: our units, the host's, our helpers."""
    units = root / "etc" / "systemd" / "system"
    units.mkdir(parents=True)
    (root / "usr" / "lib" / "systemd").mkdir(parents=True)
    os.symlink("/lib/systemd/system", root / "usr" / "lib" / "systemd" / "system")
    bin_dir = root / "usr" / "local" / "bin"
    bin_dir.mkdir(parents=True)
    # sh: the ExecStartPre= dependency check.
    for helper in (
        "holos-qmp-stop",
        "holos-health",
        "holos-seed",
        "holos-image",
        "holos-bake",
        "holos-console-log",
        "holos-switch",
        "sh",
    ):
        # The helpers of the checkout under test first (beside the interpreter running it).
        beside = Path(sys.executable).with_name(helper)
        found = str(beside) if beside.exists() else shutil.which(helper)
        assert found, f"{helper} is not installed: pip install ."
        shutil.copy2(found, bin_dir / helper)  # absolute links would resolve inside root
    for path, file in output.files.items():
        if len(path.parts) == 1 and path.suffix in (".service", ".target", ".timer"):
            (units / path.name).write_bytes(file.data)
        elif path.parts[0] == project:
            target = root / "etc" / "holos" / path
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(file.data)
            target.chmod(file.mode)
    return units
