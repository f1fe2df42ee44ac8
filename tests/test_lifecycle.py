"""holosc up/down/start/stop/ps/install against a real (private) systemd and real QEMU.

The guests are the tiny busybox kernel+initramfs of tests/guestkernel.py: they boot in
seconds under TCG and power off on the ACPI button, so stops are real graceful stops.
Health gates that pass need sshd in the guest: tests/e2e covers those with a Debian guest.
"""

from __future__ import annotations

import contextlib
import json
import os
import pty
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from holos_runtime import consolelog

from tests.conftest import REPO, require_tool
from tests.guestkernel import READY_MARK, tiny_project
from tests.systemd_harness import PrivateSystemd

PROJECT = """\
name: life
x-tiny: &tiny
  image: ./disk.qcow2
  stop_grace_period: 20s
  vm:
    memory_mb: 128
    kernel: ./vmlinuz
    initrd: ./acpi.cpio.gz
    cmdline: console=ttyS0 quiet panic=-1
services:
  db:
    <<: *tiny
    volumes: ["data:/data"]
  web:
    <<: *tiny
    replicas: 2
    depends_on: [db]
    cloud_init:
      runcmd: [echo version 1]
volumes:
  data: {size: 16M}
"""


@pytest.fixture
def project(tmp_path: Path, guest_kernel: Path, initramfs: dict[str, Path]) -> Path:
    d = tiny_project(tmp_path / "project", PROJECT, guest_kernel, initramfs)
    subprocess.run(
        [require_tool("qemu-img"), "create", "-q", "-f", "qcow2", str(d / "disk.qcow2"), "32M"],
        check=True,
    )
    return d


@pytest.fixture
def systemd(tmp_path: Path) -> Iterator[PrivateSystemd]:
    sd = PrivateSystemd(tmp_path / "systemd").start()
    try:
        yield sd
    finally:
        sd.stop()


def holosc(sd: PrivateSystemd, project: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return sd.holosc(*args, cwd=project, HOLOSC_SSH_KEY=str(project.parent / "key"))


def wait_ready(sd: PrivateSystemd, *instances: str, boots: int = 1, timeout: float = 120) -> None:
    """Wait for the guests' init to listen for the power button (a powerdown sent while a
    guest still boots is lost; shared/testing/README.md)."""
    deadline = time.monotonic() + timeout
    for inst in instances:
        log = sd.state / "var-lib-holos" / "instances" / "life" / inst / "console.log"
        # console.log is appended to across boots: wait for this boot's mark.
        while not (log.exists() and log.read_text(errors="replace").count(READY_MARK) >= boots):
            assert time.monotonic() < deadline, f"{inst} not ready"
            time.sleep(0.2)


def on_terminal(sd: PrivateSystemd, project: Path, *args: str) -> tuple[int, str]:
    """holosc ARGS with its output on a pseudo-terminal: exit code and what it printed."""
    leader, follower = pty.openpty()
    env = dict(os.environ, HOLOS_ACCEL="tcg", PYTHONPATH=str(REPO), COLUMNS="200")
    env["HOLOSC_SSH_KEY"] = str(project.parent / "key")
    proc = subprocess.Popen(
        [*sd.nsenter(), f"--wd={project}", "--", sys.executable, "-m", "holosc", *args],
        env=env, stdin=subprocess.DEVNULL, stdout=follower, stderr=follower,
    )  # fmt: skip
    os.close(follower)
    chunks = []
    with contextlib.suppress(OSError):  # EIO once the terminal is drained
        while data := os.read(leader, 65536):
            chunks.append(data)
    os.close(leader)
    return proc.wait(timeout=600), b"".join(chunks).decode(errors="replace")


def show(sd: PrivateSystemd, unit: str, prop: str) -> str:
    return sd.systemctl("show", "-p", prop, "--value", unit).stdout.strip()


# systemd's catalog message ids (the same in 252 and 257, whatever the message text).
STARTING, STARTED = "7d4958e842da4a758f6c1cdc7b36dcc5", "39f53479d3a045ac8e11786248231fbf"
STOPPING, STOPPED = "de5b426a63be47a7b6ac3eaac82e2f6f", "9d1aaa27d60140bd96365438aad20286"


def last_event(sd: PrivateSystemd, unit: str, message_id: str) -> int:
    """The monotonic time (us) of the last time the manager logged `message_id` of `unit`:
    the journal keeps it after the unit file is gone (down)."""
    out = sd.run(
        ["journalctl", "--no-pager", "-o", "json", f"MESSAGE_ID={message_id}", f"UNIT={unit}"]
    ).stdout
    times = [int(json.loads(line)["__MONOTONIC_TIMESTAMP"]) for line in out.splitlines()]
    assert times, f"no {message_id} of {unit} in the journal"
    return times[-1]


def assert_together(sd: PrivateSystemd, units: list[str], begin: str, end: str) -> None:
    """Every unit's job began before any of them finished: systemd ran them at once, not
    one by one (which would take the sum of their start or grace periods)."""
    began = {u: last_event(sd, u, begin) for u in units}
    ended = {u: last_event(sd, u, end) for u in units}
    assert max(began.values()) < min(ended.values()), (began, ended)


def _flood(sd: PrivateSystemd, instance: str, end: str = "") -> Path:
    """Grow an instance's console log past its bound, as a guest writing in a loop does."""
    log = sd.state / "var-lib-holos" / "instances" / "life" / instance / "console.log"
    with log.open("ab") as flood:  # QEMU may have it open for appending too
        flood.write(b"".join(b"flood %07d\r\n" % i for i in range(250_000)) + end.encode())
    assert log.stat().st_size > consolelog.MAX_BYTES
    return log


def _check_console_logs_stay_bounded(sd: PrivateSystemd, project: Path) -> None:
    """The console logs timer runs while the project does; its service cuts a log that
    grew past the bound from the beginning while QEMU runs."""
    assert show(sd, "holos-life-console-logs.timer", "ActiveState") == "active"
    log = _flood(sd, "db-0")
    sd.systemctl("start", "holos-life-console-logs.service")
    assert log.stat().st_size <= consolelog.KEEP_BYTES + 4096
    tail = holosc(sd, project, "logs", "db-0", "--console", "-n", "2")
    assert tail.stdout == "==> db-0 <==\nflood 0249998\nflood 0249999\n", tail.stdout


def test_up_ps_stop_start_down(systemd: PrivateSystemd, project: Path) -> None:
    up = holosc(systemd, project, "up")
    assert up.returncode == 0, up.stderr
    assert "web-1: running" in up.stderr and "3 instance(s) running" in up.stderr
    # Ordering: db was active before web's start began.
    db_up = int(show(systemd, "holos-life-db@0.service", "ActiveEnterTimestampMonotonic"))
    web_start = int(show(systemd, "holos-life-web@0.service", "InactiveExitTimestampMonotonic"))
    assert db_up <= web_start
    webs = ["holos-life-web@0.service", "holos-life-web@1.service"]
    assert_together(systemd, webs, STARTING, STARTED)  # replicas start in parallel

    ps = json.loads(holosc(systemd, project, "ps", "--json").stdout)
    assert [r["instance"] for r in ps] == ["db-0", "web-0", "web-1"]
    assert all(r["state"] == "active/running" and r["pid"] for r in ps)

    wait_ready(systemd, "db-0", "web-0", "web-1")
    logs = holosc(systemd, project, "logs", "web", "-n", "50")
    assert logs.returncode == 0, logs.stderr
    assert "Started holos-life-web@0.service" in logs.stdout
    assert "Started holos-life-web@1.service" in logs.stdout
    console_log = holosc(systemd, project, "logs", "db-0", "--console")
    assert "==> db-0 <==" in console_log.stdout and READY_MARK in console_log.stdout
    _check_console_logs_stay_bounded(systemd, project)
    # No terminal here: the console attaches to the serial socket, then detaches on EOF.
    console = holosc(systemd, project, "console", "db-0")
    assert console.returncode == 0, console.stderr
    assert "Connected to the serial console. Press Ctrl-] to detach." in console.stderr
    assert "detached" in console.stderr
    stop = holosc(systemd, project, "stop", "web")
    assert stop.returncode == 0, stop.stderr
    assert show(systemd, "holos-life-web@0.service", "ActiveState") == "inactive"
    assert show(systemd, "holos-life-db@0.service", "ActiveState") == "active"
    journal = systemd.run(["journalctl", "-u", "holos-life-web@0.service", "--no-pager"]).stdout
    assert re.search(r"web-0: guest shut down after [\d.]+ s", journal), journal

    _check_snapshots_and_pause(systemd, project)

    # A log past its bound is cut when the instance starts (the first boot's mark kept).
    web_log = _flood(systemd, "web-0", end=f"{READY_MARK}\n")
    start = holosc(systemd, project, "start", "web", "-p", "life")
    assert start.returncode == 0, start.stderr
    assert show(systemd, "holos-life-web@1.service", "ActiveState") == "active"

    wait_ready(systemd, "web-0", "web-1", boots=2)
    assert web_log.stat().st_size < consolelog.KEEP_BYTES + (256 << 10)
    assert b"flood 0000000\r\n" not in web_log.read_bytes()  # the beginning is gone

    _check_restore_leaves_dependents(systemd, project)

    began = time.monotonic()
    down = holosc(systemd, project, "down")
    assert down.returncode == 0, down.stderr
    print(f"E2E_METRIC lifecycle_down_s={time.monotonic() - began:.1f}")
    # The replicas shut down at once; db, which they depend on, after both.
    assert_together(systemd, webs, STOPPING, STOPPED)
    db_stopping = last_event(systemd, "holos-life-db@0.service", STOPPING)
    assert db_stopping > max(last_event(systemd, u, STOPPED) for u in webs)
    assert not systemd.run(["pgrep", "-f", "qemu-system"], check=False).stdout.strip()
    assert not list(systemd.units.glob("holos-life*"))
    state = systemd.state / "var-lib-holos"
    assert (state / "volumes" / "life" / "data.qcow2").exists(), "named volume kept"
    # The disks go; each console log stays (renamed) until the next up: it is what
    # explains a stop that had to force-quit a guest.
    left = sorted(str(p.relative_to(state)) for p in (state / "instances").rglob("*"))
    assert left == [
        "instances/life",
        "instances/life/db-0",
        "instances/life/db-0/console-before-down.log",
        "instances/life/web-0",
        "instances/life/web-0/console-before-down.log",
        "instances/life/web-1",
        "instances/life/web-1/console-before-down.log",
    ], left
    kept = (state / "instances" / "life" / "web-0" / "console-before-down.log").read_text()
    assert kept.count(READY_MARK) == 2, kept[-500:]
    # The snapshots went with the instances, their parts in the kept volume too.
    assert "holos/" not in _qemu_img_snapshots(state / "volumes" / "life" / "data.qcow2")


def _qemu_img_snapshots(disk: Path) -> str:
    return subprocess.run(
        [require_tool("qemu-img"), "snapshot", "-U", "-l", str(disk)],
        check=True,
        capture_output=True,
        text=True,
    ).stdout


def _check_snapshots_and_pause(sd: PrivateSystemd, project: Path) -> None:
    """db runs, web is stopped: one save snapshots db live (root disk and its volume in
    one QMP transaction) and web offline (qemu-img); names are checked, a name is not
    saved twice; list shows them with what they hold; rm deletes; pause and unpause
    freeze and resume db's CPUs, ps shows it."""
    save = holosc(sd, project, "snapshot", "save", "s1")
    assert save.returncode == 0, save.stderr
    assert "db-0: saved snapshot s1 (live: root, data)" in save.stdout, save.stdout
    assert "web-1: saved snapshot s1 (offline: root)" in save.stdout, save.stdout
    again = holosc(sd, project, "snapshot", "save", "s1", "db")
    assert again.returncode == 5 and "db-0 already has a snapshot 's1'" in again.stderr
    bad = holosc(sd, project, "snapshot", "save", "Bad_Name")
    assert bad.returncode == 2 and "invalid snapshot name 'Bad_Name'" in bad.stderr, bad.stderr
    listed = json.loads(holosc(sd, project, "snapshot", "list", "--json").stdout)
    assert [(s["name"], s["instance"], s["disks"]) for s in listed] == [
        ("s1", "db-0", ["root", "data"]),
        ("s1", "web-0", ["root"]),
        ("s1", "web-1", ["root"]),
    ], listed
    assert all(isinstance(s["size"], int) for s in listed), listed
    table = holosc(sd, project, "snapshot", "list", "web-1").stdout.splitlines()
    assert table[0].split() == ["NAME", "INSTANCE", "CREATED", "DISKS", "SIZE"], table
    assert table[1].split()[:2] == ["s1", "web-1"] and len(table) == 2, table
    rm = holosc(sd, project, "snapshot", "rm", "s1", "web")
    assert rm.returncode == 0 and "web-0: removed snapshot s1" in rm.stdout, rm.stderr
    listed = json.loads(holosc(sd, project, "snapshot", "list", "--json").stdout)
    assert [s["instance"] for s in listed] == ["db-0"], listed
    disk = sd.state / "var-lib-holos" / "instances" / "life" / "db-0" / "root.qcow2"
    assert "holos/db-0/s1" in _qemu_img_snapshots(disk)

    pause = holosc(sd, project, "pause", "db")
    assert pause.returncode == 0, pause.stderr
    ps = json.loads(holosc(sd, project, "ps", "db", "--json").stdout)
    assert ps[0]["state"] == "active/paused", ps
    assert show(sd, "holos-life-db@0.service", "ActiveState") == "active"
    stopped = holosc(sd, project, "pause", "web")
    assert stopped.returncode == 5 and "not running: web-0, web-1" in stopped.stderr
    assert holosc(sd, project, "unpause", "db").returncode == 0
    ps = json.loads(holosc(sd, project, "ps", "db", "--json").stdout)
    assert ps[0]["state"] == "active/running", ps


def _check_restore_leaves_dependents(sd: PrivateSystemd, project: Path) -> None:
    """Restoring db stops it, switches its disks and starts it again; web, which depends
    on it, keeps running (same PIDs)."""
    web = ["holos-life-web@0.service", "holos-life-web@1.service"]
    before = {u: show(sd, u, "MainPID") for u in web}
    db_pid = show(sd, "holos-life-db@0.service", "MainPID")
    restore = holosc(sd, project, "snapshot", "restore", "s1")
    assert restore.returncode == 0, restore.stderr
    assert "db-0: disks at snapshot s1 (root, data)" in restore.stdout, restore.stdout
    assert show(sd, "holos-life-db@0.service", "MainPID") != db_pid
    assert show(sd, "holos-life-db@0.service", "ActiveState") == "active"
    assert {u: show(sd, u, "MainPID") for u in web} == before


def test_kill_9_is_restarted_and_ps_tells_the_truth(systemd: PrivateSystemd, project: Path) -> None:
    assert holosc(systemd, project, "up").returncode == 0
    unit = "holos-life-db@0.service"
    wait_ready(systemd, "db-0", "web-0", "web-1")
    pid = int(show(systemd, unit, "MainPID"))
    killed = time.monotonic()
    systemd.run(["kill", "-9", str(pid)])
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        new = int(show(systemd, unit, "MainPID") or 0)
        if new and new != pid and show(systemd, unit, "ActiveState") == "active":
            break
        time.sleep(0.2)
    print(f"E2E_METRIC lifecycle_restart_after_kill_s={time.monotonic() - killed:.1f}")
    assert show(systemd, unit, "NRestarts") == "1"
    ps = json.loads(holosc(systemd, project, "ps", "--json").stdout)
    db = next(r for r in ps if r["instance"] == "db-0")
    assert db["pid"] == new and db["restarts"] == 1 and db["state"] == "active/running"
    _check_compose_operations(systemd, project)


def _check_stats(sd: PrivateSystemd, project: Path) -> None:
    """stats --no-stream --json: the running instances only; memory is the unit's cgroup
    (compared with the cgroup file read right after: within 10 %), the limit the guest's
    RAM, disk bytes from QMP."""
    began = time.monotonic()
    result = holosc(sd, project, "stats", "--no-stream", "--json", "--interval", "1")
    print(f"E2E_METRIC lifecycle_stats_s={time.monotonic() - began:.1f}")
    assert result.returncode == 0, result.stderr
    rows = {r["name"]: r for r in json.loads(result.stdout)}
    assert sorted(rows) == ["db-0", "web-0"], rows  # web-1 was killed
    db = rows["db-0"]
    cgroup = sd.cgroup_memory("holos-life-db@0.service")
    assert abs(db["mem_usage"] - cgroup) <= cgroup * 0.10, (db, cgroup)
    assert db["mem_limit"] == 128 << 20, db
    assert db["cpu_percent"] is not None and db["cpu_percent"] >= 0, db
    assert db["block_read"] is not None and db["block_written"] is not None, db  # from QMP
    table = holosc(sd, project, "stats", "--no-stream", "--interval", "0.5", "web")
    assert table.stdout.startswith("NAME ") and "\nweb-0 " in table.stdout, table.stdout
    assert "db-0" not in table.stdout


def _check_compose_operations(sd: PrivateSystemd, project: Path) -> None:
    """kill, wait, restart, port and ls on the running project: each touches only the
    instances named, never their dependents."""
    wait_ready(sd, "db-0", boots=2)  # the kill -9 above rebooted it
    pids = {i: show(sd, f"holos-life-{i.replace('-', '@')}.service", "MainPID") for i in
            ("db-0", "web-0", "web-1")}  # fmt: skip
    killed = holosc(sd, project, "kill", "web-1")
    assert killed.returncode == 0 and "web-1: killed (SIGKILL)" in killed.stderr, killed.stderr
    assert show(sd, "holos-life-web@1.service", "ActiveState") == "inactive"  # not restarted
    waited = holosc(sd, project, "wait", "web-1")
    assert (waited.returncode, waited.stdout) == (0, "web-1 9\n"), waited  # SIGKILL's status

    listed = holosc(sd, project, "ls")
    assert listed.stdout.split("\n")[1].split()[:3] == ["life", "exited(1),", "running(2)"]
    table = json.loads(holosc(sd, project, "ls", "--format", "json").stdout)
    assert table == [{"Name": "life", "Status": "exited(1), running(2)",
                      "ConfigFiles": str(project)}]  # fmt: skip

    ssh_port = json.loads((sd.state / "etc-holos" / "life" / "holos.lock.json").read_text())[
        "instances"]["web-1"]["ssh_port"]  # fmt: skip
    port = holosc(sd, project, "port", "--index", "2", "web", "22")
    assert (port.returncode, port.stdout) == (0, f"127.0.0.1:{ssh_port}\n"), port
    none = holosc(sd, project, "port", "web", "80")
    assert none.returncode == 5 and "no host port is published for 80/tcp" in none.stderr

    _check_stats(sd, project)

    # restart db: a graceful stop and a start; web-0, which depends on it, keeps running.
    restarted = holosc(sd, project, "restart", "db")
    assert restarted.returncode == 0, restarted.stderr
    assert "restarted db-0" in restarted.stderr
    assert show(sd, "holos-life-db@0.service", "MainPID") not in ("0", pids["db-0"])
    assert show(sd, "holos-life-web@0.service", "MainPID") == pids["web-0"]
    journal = sd.run(["journalctl", "-u", "holos-life-db@0.service", "--no-pager"]).stdout
    assert "db-0: guest shut down after" in journal, journal

    # run --rm: a one-off web-2 starts beside the others on its own disk, and leaves no
    # disk, files or unit behind. The tiny guest has no sshd, so ssh fails (255) and the
    # cleanup is what is checked here.
    ran = holosc(sd, project, "run", "--rm", "--wait", "3", "web", "--", "true")
    assert ran.returncode == 255, ran.stderr
    assert "web-2: starting" in ran.stderr and "web-2: removed" in ran.stderr, ran.stderr
    journal = sd.run(["journalctl", "-u", "holos-life-web@2.service", "--no-pager"]).stdout
    assert "Started holos-life-web@2.service" in journal, journal
    assert not (sd.state / "var-lib-holos" / "instances" / "life" / "web-2").exists()
    assert not (sd.state / "etc-holos" / "life" / "web-2").exists()
    assert show(sd, "holos-life-web@2.service", "ActiveState") == "inactive"
    assert show(sd, "holos-life-web@0.service", "MainPID") == pids["web-0"]
    assert "web-2" not in holosc(sd, project, "ps").stdout

    # wait blocks until the guest powers itself off (the ACPI button, behind systemd's
    # back), then prints QEMU's exit status.
    wait_ready(sd, "web-0")
    qmp = "/run/holos/life/web-0/qmp.sock"
    sd.run(["sh", "-c", f"(sleep 2; holos-qmp-stop --qmp {qmp} --grace 20 --instance web-0)"
            " >/dev/null 2>&1 &"])  # fmt: skip
    waited = holosc(sd, project, "wait", "web")
    assert (waited.returncode, waited.stdout) == (0, "web-1 9\nweb-0 0\n"), waited
    assert "waiting for web-0 web-1 to stop" in waited.stderr


def test_edit_restarts_only_changed_service(systemd: PrivateSystemd, project: Path) -> None:
    assert holosc(systemd, project, "up").returncode == 0
    units = ["holos-life-db@0.service", "holos-life-web@0.service", "holos-life-web@1.service"]
    before = {u: show(systemd, u, "MainPID") for u in units}
    wait_ready(systemd, "db-0", "web-0", "web-1")  # a powerdown sent while booting is lost
    text = (project / "holos.yaml").read_text().replace("version 1", "version 2")
    (project / "holos.yaml").write_text(text)
    again = holosc(systemd, project, "up")
    assert again.returncode == 0, again.stderr
    # Both changed replicas restarted at once (each shut down in its own grace period).
    assert_together(systemd, units[1:], STOPPING, STARTED)
    after = {u: show(systemd, u, "MainPID") for u in units}
    restarted = sorted(u for u in units if before[u] != after[u])
    print(f"E2E_METRIC lifecycle_restarted_after_edit={len(restarted)}")
    assert restarted == units[1:], (before, after)
    # An up with nothing changed restarts nothing.
    assert holosc(systemd, project, "up").returncode == 0
    assert {u: show(systemd, u, "MainPID") for u in units} == after


def test_failing_healthcheck_fails_up_and_holds_dependents(
    systemd: PrivateSystemd, project: Path
) -> None:
    text = (
        (project / "holos.yaml")
        .read_text()
        .replace(
            '    volumes: ["data:/data"]\n',
            '    volumes: ["data:/data"]\n    healthcheck:\n      test: ["true"]\n'
            "      interval: 1s\n      timeout: 2s\n      retries: 4\n",
        )
    )
    (project / "holos.yaml").write_text(text)
    code, shown = on_terminal(systemd, project, "up")
    assert code == 1, shown
    assert "db-healthy: UNHEALTHY" in shown
    assert "db-healthy failed first (exit-code): its journal from this start:" in shown, shown
    assert "unhealthy after 4 consecutive failures" in shown, shown  # holos-health's words
    assert show(systemd, "holos-life-web@0.service", "ActiveState") != "active"
    # Signs of life while it waited: one line per unit, drawn again in place (the cursor
    # goes up to the block and clears it), with the seconds and each health attempt.
    assert re.search(r"\x1b\[\d+F\x1b\[J", shown), shown
    assert re.search(r"db-healthy: waiting for health, \d+ s: attempt \d+: ", shown), shown
    assert re.search(r"db-0: booting, \d+ s", shown), shown
    # -q: no progress at all, only the error.
    quiet = holosc(systemd, project, "-q", "up")
    assert quiet.returncode == 1, quiet.stderr
    assert quiet.stderr.startswith("holosc: error: project life did not start"), quiet.stderr
    assert "waiting for health" not in quiet.stderr, quiet.stderr


def test_up_after_a_failed_up_reports_no_stale_failure(
    systemd: PrivateSystemd, project: Path
) -> None:
    """A unit left failed by the previous up is not reported FAILED by the next one."""
    good = (project / "holos.yaml").read_text()
    (project / "holos.yaml").write_text(
        good.replace("memory_mb: 128", "memory_mb: 128\n    cpu_model: no-such-cpu")
    )
    failed = holosc(systemd, project, "up")
    assert failed.returncode == 1 and "db-0: FAILED" in failed.stderr, failed.stderr
    assert show(systemd, "holos-life-db@0.service", "ActiveState") == "failed"
    # The cause: QEMU's own words from db-0's start, not the dependents' or a gate's.
    assert "db-0 failed first (exit-code): its journal from this start:" in failed.stderr
    assert "no-such-cpu" in failed.stderr, failed.stderr
    # Nothing of the project runs, and systemd says so of its target too.
    assert "life: no instance runs; stopped holos-life.target" in failed.stderr
    assert show(systemd, "holos-life.target", "ActiveState") == "inactive"
    (project / "holos.yaml").write_text(good)
    again = holosc(systemd, project, "up")
    assert again.returncode == 0, again.stderr
    assert "FAILED" not in again.stderr, again.stderr
    assert "db-0: running" in again.stderr


def test_roots_are_asked_of_the_manager(systemd: PrivateSystemd, project: Path) -> None:
    """No HOLOSC_UNIT_DIR or HOLOSC_*_DIR: the private systemd's UnitPath is its test
    directory, and its %S/%E/%t are the system ones; doctor prints what it was told."""
    doctor = holosc(systemd, project, "doctor", "--json")
    roots = next(c for c in json.loads(doctor.stdout) if c["name"] == "roots (system)")
    assert roots["status"] == "ok", roots
    assert roots["detail"] == (
        f"units {systemd.units}, %S/holos /var/lib/holos, %E/holos /etc/holos, %t/holos /run/holos"
    )
    assert (systemd.units / "holos-roots.service").is_file()
    assert show(systemd, "holos-roots.service", "ActiveState") == "inactive"  # never started


def test_install_enable_and_uninstall(systemd: PrivateSystemd, project: Path) -> None:
    result = holosc(systemd, project, "install", "--enable")
    assert result.returncode == 0, result.stderr
    link = systemd.units / "multi-user.target.wants" / "holos-life.target"
    assert (
        link.is_symlink() and (link.parent / link.readlink()).resolve().name == "holos-life.target"
    )
    assert show(systemd, "holos-life.target", "LoadState") == "loaded"
    for _ in range(2):  # idempotent
        result = holosc(systemd, project, "uninstall")
        assert result.returncode == 0, result.stderr
    assert not link.exists() and not list(systemd.units.glob("holos-life*"))


def test_unknown_project_and_instance_are_one_line_errors(
    systemd: PrivateSystemd, project: Path
) -> None:
    result = holosc(systemd, project, "down", "-p", "nope")
    assert result.returncode == 5
    assert (
        result.stderr.strip().splitlines()[0] == "holosc: error: project 'nope' is not installed "
        "(hint: run holosc up (or holosc install) in its directory first)"
    )
    assert holosc(systemd, project, "install").returncode == 0
    result = holosc(systemd, project, "exec", "web-9", "--", "true")
    assert result.returncode == 5 and "no instance 'web-9' in project 'life'" in result.stderr


def test_systemd_not_reachable_is_one_line(tmp_path: Path) -> None:
    """On this host PID 1 is not systemd; a manager that does not answer is one line."""
    result = subprocess.run(
        [
            str(REPO / ".venv/bin/python") if (REPO / ".venv/bin/python").exists() else "python3",
            "-m",
            "holosc",
            "ps",
        ],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env={"PATH": "/usr/bin:/bin", "HOLOSC_SYSTEMCTL": "false", "PYTHONPATH": str(REPO)},
    )
    assert result.returncode == 5
    assert result.stderr.startswith("holosc: error: systemd (system manager) is not reachable")
