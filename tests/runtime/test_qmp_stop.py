"""holos-qmp-stop against real QEMU (TCG) running a tiny busybox guest."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

GRACE = 3.0


def qmp_stop(*args: str, env: dict[str, str] | None = None) -> tuple[int, str, float]:
    """Run the helper as the unit does; return (exit code, stderr, seconds)."""
    start = time.monotonic()
    proc = subprocess.run(
        [sys.executable, "-m", "holos_runtime.qmp_stop", *args],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=60,
        env={k: v for k, v in os.environ.items() if k != "MAINPID"} | (env or {}),
    )
    elapsed = time.monotonic() - start
    print(proc.stderr)
    return proc.returncode, proc.stderr, elapsed


StartGuest = Callable[..., Any]


def test_graceful_stop_of_guest_that_honours_acpi(start_guest: StartGuest) -> None:
    guest = start_guest("acpi")
    guest.wait_ready()
    rc, err, elapsed = qmp_stop(
        "--qmp", str(guest.qmp), "--pid", str(guest.proc.pid), "--instance", "web-0"
    )
    assert rc == 0, err
    assert "web-0: powerdown sent" in err
    assert re.search(r"web-0: guest shut down after \d+\.\d s", err), err
    assert guest.proc.wait(timeout=10) == 0
    assert elapsed < 15


def test_booting_guest_gets_the_button_again(start_guest: StartGuest) -> None:
    """A press sent before the guest's ACPI driver listens is lost; the helper presses
    again during the grace period instead of waiting all of it."""
    guest = start_guest("acpi")
    guest.wait_qmp()  # QEMU is up, the guest kernel has not loaded button.ko yet
    rc, err, elapsed = qmp_stop(
        "--qmp", str(guest.qmp), "--pid", str(guest.proc.pid), "--grace", "60",
        "--instance", "web-0",
    )  # fmt: skip
    assert rc == 0, err
    assert "web-0: powerdown sent again" in err
    assert guest.proc.wait(timeout=10) == 0
    print(f"E2E_METRIC qmp_stop_booting_guest_s={elapsed:.1f}")
    assert elapsed < 45  # well within the grace; without re-sending it took all 60 s


def test_graceful_stop_uses_mainpid_from_environment(start_guest: StartGuest) -> None:
    guest = start_guest("acpi")
    guest.wait_ready()
    rc, err, _ = qmp_stop("--qmp", str(guest.qmp), env={"MAINPID": str(guest.proc.pid)})
    assert rc == 0, err
    assert guest.proc.wait(timeout=10) == 0


def test_graceful_stop_without_pid_relies_on_qmp_eof(start_guest: StartGuest) -> None:
    guest = start_guest("acpi")
    guest.wait_ready()
    rc, err, _ = qmp_stop("--qmp", str(guest.qmp), "--instance", "web-0")
    assert rc == 0, err
    assert guest.proc.wait(timeout=10) == 0


def test_guest_ignoring_powerdown_is_quit_after_grace(start_guest: StartGuest) -> None:
    guest = start_guest("ignore")
    guest.wait_ready()
    rc, err, elapsed = qmp_stop(
        "--qmp", str(guest.qmp), "--pid", str(guest.proc.pid), "--grace", str(GRACE),
        "--instance", "web-1",
    )  # fmt: skip
    assert rc == 1, err
    assert "web-1: no shutdown after 3.0 s, sending quit" in err
    assert guest.proc.wait(timeout=10) == 0  # QEMU exits 0 on quit
    assert GRACE <= elapsed < GRACE + 10


def test_missing_socket_is_nothing_to_stop(tmp_path: Path) -> None:
    rc, err, elapsed = qmp_stop("--qmp", str(tmp_path / "nope.sock"), "--instance", "web-0")
    assert rc == 3, err
    assert "web-0: nothing to stop (socket missing)" in err
    assert elapsed < 5


def test_exited_qemu_is_nothing_to_stop(start_guest: StartGuest) -> None:
    guest = start_guest("ignore")
    guest.proc.kill()
    guest.proc.wait(timeout=10)
    rc, err, elapsed = qmp_stop("--qmp", str(guest.qmp), "--pid", str(guest.proc.pid))
    assert rc == 3, err
    assert "nothing to stop" in err
    assert elapsed < 5


def test_stale_socket_without_pid_is_nothing_to_stop(start_guest: StartGuest) -> None:
    guest = start_guest("ignore")
    guest.proc.kill()  # SIGKILL leaves the socket file behind, nobody listening
    guest.proc.wait(timeout=10)
    assert guest.qmp.exists()
    rc, err, _ = qmp_stop("--qmp", str(guest.qmp))
    assert rc == 3, err


def test_paused_guest_goes_straight_to_quit(start_guest: StartGuest) -> None:
    guest = start_guest("acpi", "-S")  # never started: status "prelaunch"
    rc, err, elapsed = qmp_stop(
        "--qmp", str(guest.qmp), "--pid", str(guest.proc.pid), "--grace", "30"
    )
    assert rc == 1, err
    assert "cannot act on the power button" in err
    assert elapsed < 15  # did not sit out the 30 s grace
    assert guest.proc.wait(timeout=10) == 0


def test_hung_qemu_exits_with_error_code(start_guest: StartGuest) -> None:
    guest = start_guest("ignore")
    guest.proc.send_signal(19)  # SIGSTOP: the socket accepts, nobody answers
    rc, err, elapsed = qmp_stop(
        "--qmp", str(guest.qmp), "--pid", str(guest.proc.pid), "--grace", str(GRACE)
    )
    assert rc == 4, err
    assert "could not stop" in err
    assert elapsed < GRACE + 20
    assert guest.proc.poll() is None  # left for systemd's SIGTERM/SIGKILL


def test_usage_error_exits_2() -> None:
    rc, err, _ = qmp_stop("--grace", "3")
    assert rc == 2, err
    rc, err, _ = qmp_stop("--qmp", "x", "--grace", "-1")
    assert rc == 2, err


def test_guest_paused_over_qmp_is_not_resumed(start_guest: StartGuest) -> None:
    import asyncio

    from qemu.qmp import QMPClient

    guest = start_guest("acpi")
    guest.wait_ready()

    async def pause() -> None:
        client = QMPClient("test")
        await client.connect(str(guest.qmp))
        await client.execute("stop")
        await client.disconnect()

    asyncio.run(pause())
    rc, err, elapsed = qmp_stop("--qmp", str(guest.qmp), "--pid", str(guest.proc.pid))
    assert rc == 1, err
    assert "guest is paused, it cannot act on the power button" in err
    assert "button pressed" not in guest.serial.read_text()  # the guest never ran again
    assert elapsed < 15
    assert guest.proc.wait(timeout=10) == 0
