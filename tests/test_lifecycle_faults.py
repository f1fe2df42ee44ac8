"""Faults and everyday changes under the private systemd with the tiny busybox guests:
removed instances, crashing dependencies, crash loops, concurrent commands, full disks.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

from tests.conftest import REPO
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

    kept = ("holos-life-db@0.service", "holos-life-web@0.service")
    pids = {u: show(systemd, u, "MainPID") for u in kept}
    edit(project, "    replicas: 2\n", "    replicas: 1\n")
    began = time.monotonic()
    up = holosc(systemd, project, "up")
    assert up.returncode == 0, up.stderr
    # Scaling web restarts nobody else, not even web's other replica (compose semantics):
    # their files did not change, only the project's peer list did.
    restarted = sum(show(systemd, u, "MainPID") != pids[u] for u in kept)
    print(f"E2E_METRIC instances_restarted_by_scaling={restarted}")
    print(f"E2E_METRIC removed_replica_up_s={time.monotonic() - began:.1f}")
    assert restarted == 0, up.stderr
    # These busybox guests run no sshd: the new list reaches them at their next start.
    assert "db-0: peer names not updated" in up.stderr, up.stderr
    # ... and up does not wait out ssh's timeouts for them (10.5 s before).
    assert re.search(
        r"db-0: peer names not updated \(no SSH greeting on 127.0.0.1:\d+ within 2 s\)", up.stderr
    ), up.stderr
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
    assert not re.search(r"\s(active|failed)", listed.stdout), listed.stdout


def pid_of(sd: PrivateSystemd, unit: str) -> int:
    return int(show(sd, unit, "MainPID") or 0)


def kill_and_wait_back(sd: PrivateSystemd, unit: str, timeout: float = 120) -> float:
    """kill -9 the unit's QEMU; seconds until systemd has it active with a new PID."""
    pid = pid_of(sd, unit)
    killed = time.monotonic()
    sd.run(["kill", "-9", str(pid)])
    while True:
        new = pid_of(sd, unit)
        if new and new != pid and show(sd, unit, "ActiveState") == "active":
            return time.monotonic() - killed
        assert time.monotonic() - killed < timeout, f"{unit} not back"
        time.sleep(0.2)


WEB = ["holos-life-web@0.service", "holos-life-web@1.service"]
DB = "holos-life-db@0.service"


def test_dependents_keep_running_while_a_dependency_restarts(
    systemd: PrivateSystemd, project: Path
) -> None:
    assert holosc(systemd, project, "up").returncode == 0
    wait_ready(systemd, "db-0", "web-0", "web-1")
    before = {u: pid_of(systemd, u) for u in WEB}
    recovered = [kill_and_wait_back(systemd, DB) for _ in range(2)]
    time.sleep(3)  # a propagated restart would have begun by now
    print(f"E2E_METRIC dependency_crash_recovery_s={max(recovered):.1f}")
    after = {u: pid_of(systemd, u) for u in WEB}
    restarted = [u for u in WEB if before[u] != after[u]]
    print(f"E2E_METRIC dependents_restarted_by_dependency_crash={len(restarted)}")
    assert not restarted and all(show(systemd, u, "ActiveState") == "active" for u in WEB)
    assert show(systemd, DB, "NRestarts") == "2"


def test_restart_true_restarts_dependents_with_the_dependency(
    systemd: PrivateSystemd, project: Path
) -> None:
    edit(project, "    depends_on: [db]\n", "    depends_on: {db: {restart: true}}\n")
    assert holosc(systemd, project, "up").returncode == 0
    wait_ready(systemd, "db-0", "web-0", "web-1")
    before = {u: pid_of(systemd, u) for u in WEB}
    kill_and_wait_back(systemd, DB)
    deadline = time.monotonic() + 120
    while not all(
        pid_of(systemd, u) not in (0, before[u]) and show(systemd, u, "ActiveState") == "active"
        for u in WEB
    ):
        assert time.monotonic() < deadline, {u: pid_of(systemd, u) for u in WEB}
        time.sleep(0.2)
    # Restarted after db was back (Requires= + After=).
    db_up = int(show(systemd, DB, "ActiveEnterTimestampMonotonic"))
    assert all(int(show(systemd, u, "InactiveExitTimestampMonotonic")) >= db_up for u in WEB)


def test_crash_loop_is_rate_limited_and_start_clears_it(
    systemd: PrivateSystemd, project: Path
) -> None:
    assert holosc(systemd, project, "up").returncode == 0
    began = time.monotonic()
    kills = 0
    while show(systemd, DB, "ActiveState") != "failed":
        assert kills < 10 and time.monotonic() - began < 300, "never rate-limited"
        pid = pid_of(systemd, DB)
        if pid and show(systemd, DB, "ActiveState") == "active":
            systemd.run(["kill", "-9", str(pid)])
            kills += 1
        time.sleep(0.2)
    print(f"E2E_METRIC crash_loop_kills_until_limit={kills}")
    print(f"E2E_METRIC crash_loop_limited_after_s={time.monotonic() - began:.1f}")
    assert show(systemd, DB, "ActiveState") == "failed"
    start = holosc(systemd, project, "start", "db")
    assert start.returncode == 0, start.stderr
    assert "db-0: systemd stopped restarting it after" in start.stderr, start.stderr
    assert "start limit hit" in start.stderr
    assert show(systemd, DB, "ActiveState") == "active"


def test_up_and_down_at_the_same_moment(systemd: PrivateSystemd, project: Path) -> None:
    """down waits for the up that holds the project's lock, says so, then takes it all
    down (before the lock: down said "not installed" and up left the project running)."""
    # A gate that never passes (the busybox guest has no sshd) keeps up busy for ~20 s.
    edit(
        project,
        '    volumes: ["data:/data"]\n',
        '    volumes: ["data:/data"]\n    healthcheck:\n      test: ["true"]\n'
        "      interval: 1s\n      timeout: 2s\n      retries: 15\n",
    )
    env = dict(HOLOSC_UNIT_DIR=str(systemd.units), HOLOS_ACCEL="tcg", PYTHONPATH=str(REPO))
    env["HOLOSC_SSH_KEY"] = str(project.parent / "key")
    cmd = [*systemd.nsenter(), f"--wd={project}", "--", sys.executable, "-m", "holosc"]
    up = subprocess.Popen([*cmd, "up"], env=os.environ | env, stderr=subprocess.PIPE, text=True)
    lock = "/run/holos/.life.lock"
    deadline = time.monotonic() + 120
    while "holosc up" not in systemd.run(["cat", lock], check=False).stdout:
        assert time.monotonic() < deadline and up.poll() is None, "up never took the lock"
        time.sleep(0.05)
    time.sleep(1)
    down = subprocess.run(
        [*cmd, "down"], env=os.environ | env, capture_output=True, text=True, timeout=600
    )
    _, up_err = up.communicate(timeout=600)
    assert re.search(r"life: waiting for holosc up \(pid \d+\) to finish", down.stderr), down.stderr
    assert down.returncode == 0, down.stderr
    assert "db-healthy: UNHEALTHY" in up_err, up_err  # up ran to its end first
    # Not on a terminal: each health attempt's result is a plain line of its own.
    attempts = re.findall(r"^db-healthy: waiting for health, \d+ s: attempt (\d+): ", up_err, re.M)
    assert len(attempts) >= 2 and "\x1b" not in up_err, up_err
    # The failed gate and web units are not left listed as "not-found failed".
    listed = systemd.systemctl("list-units", "--all", "--plain", "--no-legend", "holos-life*")
    assert "failed" not in listed.stdout, listed.stdout
    assert not systemd.run(["pgrep", "-f", "qemu-system"], check=False).stdout.strip()
    assert not list(systemd.units.glob("holos-life*"))


QMP_STOP = """
import json, socket, sys
s = socket.socket(socket.AF_UNIX); s.connect(sys.argv[1]); f = s.makefile("rb"); f.readline()
for cmd in ("qmp_capabilities", "stop"):
    s.sendall(json.dumps({"execute": cmd}).encode() + b"\\n")
    while "return" not in json.loads(f.readline()): pass
"""


def test_full_filesystems_are_clear_errors(systemd: PrivateSystemd, project: Path) -> None:
    """Small tmpfs mounted over the state and configuration directories inside the private
    systemd's mount namespace (never the host's)."""
    state = "/var/lib/holos"
    systemd.run(["mount", "-t", "tmpfs", "-o", "size=64k,mode=0755", "tmpfs", "/etc/holos"])
    systemd.run(["dd", "if=/dev/zero", "of=/etc/holos/fill", "bs=4k"], check=False)
    result = holosc(systemd, project, "install")
    assert result.returncode == 5, result.stderr
    assert "no space left on /etc/holos for project life's units and seeds" in result.stderr
    assert re.search(r"free, about [\d.]+ KiB needed", result.stderr), result.stderr
    assert "Traceback" not in result.stderr
    systemd.run(["umount", "/etc/holos"])

    systemd.run(["mount", "-t", "tmpfs", "-o", "size=24m,mode=0755", "tmpfs", state])
    systemd.run(["dd", "if=/dev/zero", f"of={state}/fill", "bs=64k"], check=False)
    # No HOLOSC_SSH_KEY: up generates the project key in the (full) state directory.
    result = systemd.holosc("up", cwd=project)
    assert result.returncode == 5, result.stderr
    assert f"no space left on {state} for the project's SSH key" in result.stderr, result.stderr
    assert "Traceback" not in result.stderr
    keys = systemd.run(["find", f"{state}/ssh", "-type", "f"], check=False).stdout
    assert not keys.strip(), f"partial key left: {keys}"

    # 8 MiB free for a 16 MiB volume: up warns, and works.
    systemd.run(["truncate", "-s", "16m", f"{state}/fill"])
    result = systemd.holosc("up", cwd=project)
    assert result.returncode == 0, result.stderr
    assert re.search(
        rf"warning: declared disk and volume sizes \(16.0 MiB: volume data 16.0 MiB\) "
        rf"exceed the free space on {state} \([\d.]+ MiB\)",
        result.stderr,
    ), result.stderr
    assert systemd.run(["test", "-s", f"{state}/ssh/life/id_ed25519"], check=False).returncode == 0

    # A guest QEMU has paused (as it does on an I/O error) is not "running" in ps.
    systemd.run([sys.executable, "-c", QMP_STOP, "/run/holos/life/db-0/qmp.sock"])
    ps = json.loads(systemd.holosc("ps", "--json", cwd=project).stdout)
    states = {r["instance"]: r["state"] for r in ps}
    assert states == {"db-0": "active/paused", "web-0": "active/running", "web-1": "active/running"}
    # Stopped at once: a paused guest cannot act on the power button.
    stop = systemd.holosc("stop", "db", cwd=project)
    assert stop.returncode == 0, stop.stderr
    assert "db-0: its guest was paused: quit at once (QMP quit)" in stop.stderr, stop.stderr
    assert "grace period" not in stop.stderr, stop.stderr


STUBBORN = """\
  stubborn:
    <<: *tiny
    stop_grace_period: 8s
    vm:
      memory_mb: 128
      kernel: ./vmlinuz
      initrd: ./ignore.cpio.gz
      cmdline: console=ttyS0 quiet panic=-1
"""
LISTENER = (
    "import socket, sys, time\n"
    "s = socket.socket(); s.bind(('127.0.0.1', int(sys.argv[1]))); s.listen(); time.sleep(900)\n"
)


def listen(sd: PrivateSystemd, port: int) -> None:
    """A process of the private systemd's namespaces holding 127.0.0.1:`port`."""
    script = (
        f'{sys.executable} -c "{LISTENER}" {port} >/dev/null 2>&1 & echo $! > /run/listener.pid'
    )
    sd.run(["sh", "-c", script])
    deadline = time.monotonic() + 30
    while f":{port} " not in sd.run(["ss", "-Hltn"]).stdout:
        assert time.monotonic() < deadline
        time.sleep(0.1)


def unlisten(sd: PrivateSystemd) -> None:
    sd.run(["sh", "-c", "kill $(cat /run/listener.pid)"])


def failed_up(sd: PrivateSystemd, project: Path) -> str:
    """`up` that must fail: its stderr, which names db-0 as the unit that failed first."""
    up = holosc(sd, project, "up")
    assert up.returncode == 1, up.stderr
    assert "db-0 failed first (exit-code): its journal from this start:" in up.stderr, up.stderr
    return up.stderr


def test_rename_port_exec_force_quit_and_ctrl_c(
    systemd: PrivateSystemd, project: Path, initramfs: dict[str, Path]
) -> None:
    shutil.copy(initramfs["ignore"], project / "ignore.cpio.gz")
    assert holosc(systemd, project, "install").returncode == 0  # as "life"
    edit(project, "name: life\n", "name: life2\n")
    edit(
        project,
        '    volumes: ["data:/data"]\n',
        '    volumes: ["data:/data"]\n    ports: ["18080:80"]\n',
    )
    edit(project, "volumes:\n  data", STUBBORN + "volumes:\n  data")
    listen(systemd, 18080)
    up = failed_up(systemd, project)
    assert "warning: project 'life' was installed from this directory too" in up
    assert "holosc down -p life" in up
    assert re.search(
        r"db-0: host port 18080/tcp \(127.0.0.1\), published by service db, is already in use "
        r"by python[\d.]* \(pid \d+\)",
        up,
    ), up
    unlisten(systemd)

    # The clash above is db-0's last journal line about a port; QEMU now fails on its
    # -cpu: up shows that start's lines only, and no port clash.
    edit(
        project, '    ports: ["18080:80"]\n', '    ports: ["18080:80"]\n    vm: {cpu_model: nope}\n'
    )
    up = failed_up(systemd, project)
    assert "nope" in up and "CPU" in up, up
    assert "already in use" not in up and "18080" not in up, up
    edit(project, "    vm: {cpu_model: nope}\n", "")

    # db-0's own SSH forward taken: said so, not as a port of the service.
    lock = json.loads((systemd.state / "etc-holos" / "life2" / "holos.lock.json").read_text())
    ssh_port = lock["instances"]["db-0"]["ssh_port"]
    listen(systemd, ssh_port)
    up = failed_up(systemd, project)
    assert re.search(
        rf"db-0: host port {ssh_port}/tcp \(127.0.0.1\), db-0's SSH forward \(holosc picked "
        r"it\), is already in use by python[\d.]* \(pid \d+\)",
        up,
    ), up
    assert "18080/tcp" not in up, up  # (QEMU's message quotes its whole -netdev)
    unlisten(systemd)

    up = holosc(systemd, project, "up")
    assert up.returncode == 0, up.stderr
    assert "FAILED" not in up.stderr, up.stderr  # db-0 failed in the run before

    assert holosc(systemd, project, "stop", "web").returncode == 0
    began = time.monotonic()
    ssh = holosc(systemd, project, "exec", "web-0", "--", "true")
    print(f"E2E_METRIC exec_stopped_instance_s={time.monotonic() - began:.1f}")
    assert ssh.returncode == 5, ssh.stderr
    assert "instance 'web-0' is not running (inactive/dead)" in ssh.stderr, ssh.stderr
    assert "holosc start web" in ssh.stderr
    console = holosc(systemd, project, "console", "web-0")
    assert console.returncode == 5, console.stderr
    assert console.stderr == (
        "holosc: error: instance 'web-0' is not running (inactive/dead) (hint: holosc start web)\n"
    ), console.stderr

    stop = holosc(systemd, project, "stop", "stubborn")
    assert stop.returncode == 0, stop.stderr
    assert "stubborn-0: did not shut down in its grace period; force-quit" in stop.stderr
    # What the guest was doing when the button went unanswered: its console's end.
    console = stop.stderr.split("stubborn-0: the console's last lines (", 1)[1]
    assert console.startswith("/var/lib/holos/instances/life2/stubborn-0/console.log):\n")
    assert "\n  | " in console, stop.stderr  # booting or waiting: whatever it printed last

    # Ctrl-C while up stops a removed instance (8 s of grace against a guest that ignores
    # the button): up says what is left and how to go on.
    assert holosc(systemd, project, "start", "stubborn").returncode == 0
    text = (project / "holos.yaml").read_text()
    (project / "holos.yaml").write_text(text.replace(STUBBORN, ""))
    env = dict(HOLOSC_UNIT_DIR=str(systemd.units), HOLOS_ACCEL="tcg", PYTHONPATH=str(REPO))
    env["HOLOSC_SSH_KEY"] = str(project.parent / "key")
    proc = subprocess.Popen(
        [*systemd.nsenter(), f"--wd={project}", "--", sys.executable, "-m", "holosc", "up"],
        env=os.environ | env,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    assert proc.stderr is not None
    seen = []
    for line in proc.stderr:
        seen.append(line)
        if "stopping removed stubborn-0" in line:
            os.killpg(proc.pid, signal.SIGINT)
            break
    rest = proc.stderr.read()
    proc.wait(timeout=60)
    output = "".join(seen) + rest
    assert "life2: interrupted; db-0 running" in output, output
    assert "run holosc up again to continue, or holosc down -p life2" in output

    # down counts what it stopped, not what was installed.
    assert holosc(systemd, project, "stop", "web").returncode == 0
    down = holosc(systemd, project, "down")
    assert down.returncode == 0, down.stderr
    assert re.search(
        # stubborn-0 may still be stopping (the interrupted up asked systemd to stop it)
        r"life2: stopped [12] instance\(s\) in [\d.]+ s "
        r"\(web-0, web-1(, stubborn-0)? were not running\)",
        down.stderr,
    ), down.stderr
