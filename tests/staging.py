"""Lay compiled output out as systemd and the launch scripts will find it on a host.

Used by the real-tool tests: units under <root>/etc/systemd/system, artifacts under
<root>/etc/holos/<project> (what %E/holos/<project> is for the system manager).
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

from holosc.compiler import Output


def write_output(output: Output, directory: Path) -> None:
    for path, file in output.files.items():
        target = directory / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(file.data)
        target.chmod(file.mode)


def verify_root(output: Output, root: Path, project: str) -> Path:
    """A --root tree for `systemd-analyze verify`: our units, the host's, our helpers."""
    units = root / "etc" / "systemd" / "system"
    units.mkdir(parents=True)
    (root / "usr" / "lib" / "systemd").mkdir(parents=True)
    os.symlink("/lib/systemd/system", root / "usr" / "lib" / "systemd" / "system")
    bin_dir = root / "usr" / "local" / "bin"
    bin_dir.mkdir(parents=True)
    for helper in ("holos-qmp-stop", "holos-health", "holos-image"):
        # The checkout's own helpers first (the venv running the tests), then PATH's.
        found = shutil.which(helper, path=f"{Path(sys.executable).parent}:{os.environ['PATH']}")
        assert found, f"{helper} is not installed: pip install ."
        shutil.copy2(found, bin_dir / helper)  # absolute links would resolve inside root
    for path, file in output.files.items():
        if len(path.parts) == 1 and path.suffix in (".service", ".target"):
            (units / path.name).write_bytes(file.data)
        elif path.parts[0] == project:
            target = root / "etc" / "holos" / path
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(file.data)
            target.chmod(file.mode)
    return units
