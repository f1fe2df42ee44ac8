"""Faults and everyday changes under the private systemd with the tiny busybox guests:
removed instances, crashing dependencies, crash loops, concurrent commands, full disks.
"""

from __future__ import annotations

import re
import time
from pathlib import Path

from tests.systemd_harness import PrivateSystemd
from tests.test_lifecycle import holosc, project, show, systemd, wait_ready

__all__ = ["project", "systemd"]  # fixtures


def edit(project: Path, old: str, new: str) -> None:
    text = (project / "holos.yaml").read_text()
    assert old in text
    (project / "holos.yaml").write_text(text.replace(old, new))


def journal(sd: PrivateSystemd, unit: str) -> str:
    return sd.run(["journalctl", "-u", unit, "--no-pager", "-o", "cat"]).stdout


def test_removed_instances_stop_gracefully_and_leave_nothing(
    systemd: PrivateSystemd, project: Path
) -> None:
    assert holosc(systemd, project, "up").returncode == 0
    wait_ready(systemd, "db-0", "web-0", "web-1")
    state = systemd.state / "var-lib-holos" / "instances" / "life"
    run = Path("/run/holos/life")
    assert (state / "web-1").is_dir()

    edit(project, "    replicas: 2\n", "    replicas: 1\n")
    began = time.monotonic()
    up = holosc(systemd, project, "up")
    assert up.returncode == 0, up.stderr
    print(f"E2E_METRIC removed_replica_up_s={time.monotonic() - began:.1f}")
    assert "stopping removed web-1" in up.stderr, up.stderr
    # The ACPI stop helper ran and the guest saw the power button.
    assert re.search(
        r"web-1: guest shut down after [\d.]+ s", journal(systemd, "holos-life-web@1.service")
    ), journal(systemd, "holos-life-web@1.service")
    console = (state / "web-0" / "console.log").read_text(errors="replace")
    assert console  # web-0 kept its files
    assert not (state / "web-1").exists(), "disk of the removed replica removed"
    assert systemd.run(["test", "-e", str(run / "web-1")], check=False).returncode != 0
    listed = systemd.systemctl("list-units", "--all", "--plain", "--no-legend", "holos-life-*")
    # Unloaded, or still loaded from the template but stopped; never "failed".
    assert not re.search(r"web@1.*\s(active|failed|not-found)", listed.stdout), listed.stdout

    wait_ready(systemd, "web-0", boots=2)  # restarted above: its /etc/hosts changed (item 2)
    # Remove the whole service: web-0 goes the same way; the named volume stays.
    text = (project / "holos.yaml").read_text()
    (project / "holos.yaml").write_text(
        text[: text.index("  web:\n")] + text[text.index("volumes:\n  data") :]
    )
    began = time.monotonic()
    up = holosc(systemd, project, "up")
    assert up.returncode == 0, up.stderr
    print(f"E2E_METRIC removed_service_up_s={time.monotonic() - began:.1f}")
    stopped = re.search(r"removed units stopped in ([\d.]+) s", up.stderr)
    assert stopped, up.stderr
    print(f"E2E_METRIC removed_service_stop_s={stopped[1]}")
    assert re.search(
        r"web-0: guest shut down after [\d.]+ s", journal(systemd, "holos-life-web@0.service")
    )
    assert not (state / "web-0").exists()
    assert (systemd.state / "var-lib-holos" / "volumes" / "life" / "data.qcow2").exists()
    assert show(systemd, "holos-life-db@0.service", "NRestarts") == "0"
    assert not list(systemd.units.glob("holos-life-web*"))

    down = holosc(systemd, project, "down")
    assert down.returncode == 0, down.stderr
    assert systemd.run(["test", "-e", str(run)], check=False).returncode != 0, "runtime dir"
    listed = systemd.systemctl("list-units", "--all", "--plain", "--no-legend", "holos-life*")
    assert not listed.stdout.strip(), listed.stdout
