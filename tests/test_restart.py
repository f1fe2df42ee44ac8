"""compose's `restart:` under a real (private) systemd with real QEMU: what each policy
does after a crash (kill -9 of QEMU) and after the guest powers itself off.

The guests are the tiny busybox guests of tests/test_lifecycle.py; a guest power-off is
the stop helper's ACPI power button sent behind systemd's back, so QEMU exits 0 without a
stop job, exactly as when someone runs `poweroff` in the guest.
"""

from __future__ import annotations

import time
from pathlib import Path

from tests.systemd_harness import PrivateSystemd
from tests.test_lifecycle import holosc, project, show, systemd  # noqa: F401 (fixtures)
from tests.test_lifecycle import wait_ready as wait_ready_life

POLICIES = {  # service -> restart: value (None: not given)
    "dflt": None,
    "never": "no",
    "always": "always",
    "failing": "on-failure",
}
# What systemd does with each policy's Restart= (docs/units.md has the table).
AFTER_KILL = {"dflt": True, "never": False, "always": True, "failing": True}
AFTER_POWEROFF = {"dflt": False, "never": False, "always": True, "failing": False}


def _project_text() -> str:
    lines = [
        "name: life",
        "x-tiny: &tiny",
        "  image: ./disk.qcow2",
        "  stop_grace_period: 20s",
        "  vm: {memory_mb: 128, kernel: ./vmlinuz, initrd: ./acpi.cpio.gz,"
        " cmdline: console=ttyS0 quiet panic=-1}",
        "services:",
    ]
    for name, policy in POLICIES.items():
        lines.append(f"  {name}:")
        lines.append("    <<: *tiny")
        if policy:
            lines.append(f'    restart: "{policy}"')
    return "\n".join(lines) + "\n"


def _unit(name: str) -> str:
    return f"holos-life-{name}@0.service"


def _settle(sd: PrivateSystemd, expect: dict[str, bool], restarts: int) -> dict[str, str]:
    """Wait until every unit is where its policy takes it; return the states seen."""
    deadline = time.monotonic() + 60
    while True:
        seen = {
            n: f"{show(sd, _unit(n), 'ActiveState')}/{show(sd, _unit(n), 'NRestarts')}"
            for n in POLICIES
        }
        done = all(
            seen[n] == f"active/{restarts}" if back else not seen[n].startswith("active")
            for n, back in expect.items()
        )
        if done or time.monotonic() > deadline:
            return seen
        time.sleep(0.3)


def test_restart_policies_after_kill_and_after_guest_poweroff(
    systemd: PrivateSystemd,  # noqa: F811 (the fixture imported above)
    project: Path,  # noqa: F811
) -> None:
    (project / "holos.yaml").write_text(_project_text())
    up = holosc(systemd, project, "up")
    assert up.returncode == 0, up.stderr
    assert show(systemd, _unit("never"), "Restart") == "no"
    assert show(systemd, _unit("failing"), "Restart") == "on-failure"
    wait_ready_life(systemd, *(f"{n}-0" for n in POLICIES))

    for name in POLICIES:
        systemd.run(["kill", "-9", show(systemd, _unit(name), "MainPID")])
    seen = _settle(systemd, AFTER_KILL, restarts=1)
    for name, back in AFTER_KILL.items():
        assert seen[name].startswith("active") == back, (name, seen)
        if back:
            assert seen[name] == "active/1", (name, seen)

    # Guest power-off of those that came back: QEMU exits 0 with no stop job.
    alive = [n for n, back in AFTER_KILL.items() if back]
    wait_ready_life(systemd, *(f"{n}-0" for n in alive), boots=2)
    for name in alive:
        qmp = f"/run/holos/life/{name}-0/qmp.sock"
        helper = ["holos-qmp-stop", "--qmp", qmp, "--grace", "20", "--instance", f"{name}-0"]
        systemd.run(helper)
    seen = _settle(systemd, {n: AFTER_POWEROFF[n] for n in alive}, restarts=2)
    for name in alive:
        assert seen[name].startswith("active") == AFTER_POWEROFF[name], (name, seen)
    assert seen["always"] == "active/2", seen
