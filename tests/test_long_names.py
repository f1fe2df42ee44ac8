"""Any valid name compiles and runs: a 63-character project and a 61-character service
(instance names are host names, so `<service>-<i>` keeps to 63) put the instance's
runtime directory far past the 107 bytes a Unix socket address holds. QEMU binds its
sockets relative to that directory, and the stop helper and `holosc console` reach them
through it, under a real (private) systemd with real QEMU."""

from __future__ import annotations

import re
import time
from pathlib import Path

from tests.guestkernel import READY_MARK
from tests.systemd_harness import PrivateSystemd
from tests.test_lifecycle import holosc, project, systemd  # noqa: F401 (fixtures)

PROJECT = "p" * 63
SERVICE = "s" * 61


def test_longest_names_start_attach_and_stop_gracefully(
    systemd: PrivateSystemd,  # noqa: F811 (the fixture imported above)
    project: Path,  # noqa: F811
) -> None:
    text = (project / "holos.yaml").read_text()
    tiny = text[: text.index("services:")].replace("name: life", f"name: {PROJECT}")
    (project / "holos.yaml").write_text(f"{tiny}services:\n  {SERVICE}:\n    <<: *tiny\n")
    run_dir = f"/run/holos/{PROJECT}/{SERVICE}-0"
    assert len(f"{run_dir}/qmp.sock") > 107
    up = holosc(systemd, project, "up")
    assert up.returncode == 0, up.stderr
    listening = systemd.run(["ls", run_dir]).stdout.split()
    assert {"qmp.sock", "serial.sock"} <= set(listening)
    console = holosc(systemd, project, "console", f"{SERVICE}-0")
    assert "Connected to the serial console" in console.stderr, console.stderr
    # A power button pressed while the guest still boots is lost: wait for its init.
    log = systemd.state / "var-lib-holos" / "instances" / PROJECT / f"{SERVICE}-0" / "console.log"
    deadline = time.monotonic() + 120
    while not (log.exists() and READY_MARK in log.read_text(errors="replace")):
        assert time.monotonic() < deadline, "guest not ready"
        time.sleep(0.2)
    journal_before = systemd.run(["journalctl", "--no-pager", "-o", "cat"]).stdout
    down = holosc(systemd, project, "down")
    assert down.returncode == 0, down.stderr
    journal = systemd.run(["journalctl", "--no-pager", "-o", "cat"]).stdout[len(journal_before) :]
    # The stop helper talked QMP: the guest powered off on the ACPI button.
    assert re.search(r"guest shut down after [\d.]+ s", journal), journal
