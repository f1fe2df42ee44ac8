"""Rootless, for real: an unprivileged user drives their own user manager on systemd 252
(Debian 12) and 257 (Debian 13).

Each Debian root boots with its own systemd as PID 1 under systemd-nspawn (no /dev/kvm,
so TCG). Lingering starts a real user@1500.service; the user `holos` (no sudo, not in the
kvm group) runs the whole lifecycle with holosc as installed there by scripts/setup.sh,
the checkout's code bound over it. Registry images come from a plain HTTP server inside
the container's private network. The guests are the tiny busybox ones of
test_lifecycle.py: they have no sshd, so `exec` is checked up to the SSH handshake (the
key from %S, the forwarded port answering); tests/e2e runs a shell through exec. They do
have virtio-net (tests/guestkernel.py, "net"): each reports the neighbours it reaches on
the project network through the user's own switch, before and after a kill -9 of the
switch and a restart of web (QEMU 7.2 and 10, systemd 252 and 257).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from holosc.tools import pull
from tests.conftest import REPO, require_tool
from tests.distro.container import UID, USER, Container
from tests.distro.root import SYSTEMD_VERSION, ensure_root, source_binds
from tests.guestkernel import PEER_MARK, READY_MARK

PROJECT = """\
name: life
x-tiny: &tiny
  stop_grace_period: 20s
  vm:
    memory_mb: 128
    kernel: ./vmlinuz
    initrd: ./acpi.cpio.gz
    cmdline: console=ttyS0 quiet panic=-1
services:
  db:
    <<: *tiny
    image: alpine:3.21
    volumes: ["data:/data"]
  web:
    <<: *tiny
    image: ./disk.qcow2
    replicas: 2
    depends_on: [db]
    ports: ["8080:80"]
volumes:
  data: {size: 16M}
"""
MIRROR_PORT = 8642
HOME = Path("/home") / USER
# The user's own install: a venv of their own, the helpers linked nowhere.
VENV = HOME / "venv"
HOLOSC = str(VENV / "bin" / "holosc")
# pip inside the container is offline: holosc's wheel (built from the checkout) and its
# dependencies' wheels (built with the root, for its Python).
OFFLINE_PIP = {"PIP_NO_INDEX": "1", "PIP_FIND_LINKS": "/wheels /opt/wheelhouse"}


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A directory holding holosc's wheel, built from the checkout under test."""
    src = tmp_path_factory.mktemp("src")
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO / name, src / name)
    for name in ("holosc", "templates", "runtime-helpers"):
        shutil.copytree(REPO / name, src / name, ignore=shutil.ignore_patterns("__pycache__"))
    dist = tmp_path_factory.mktemp("wheels")
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(dist), str(src)],
        check=True, timeout=300, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    assert len(list(dist.glob("holosc-*.whl"))) == 1
    # pipx 1.7 (Debian 13) upgrades its shared pip first: offline, it finds it here.
    subprocess.run(
        [sys.executable, "-m", "pip", "download", "--no-deps", "-q", "-d", str(dist), "pip>=23.1"],
        check=True, timeout=300, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    for path in (dist, *dist.iterdir()):  # bound into the container for its user
        path.chmod(0o755 if path.is_dir() else 0o644)
    return dist


@pytest.fixture(params=sorted(SYSTEMD_VERSION), ids=lambda s: f"{s}-systemd{SYSTEMD_VERSION[s]}")
def booted(
    request: pytest.FixtureRequest, tmp_path: Path, wheel: Path
) -> Iterator[tuple[str, Container]]:
    suite = request.param
    root = ensure_root(suite)
    work = tmp_path / "work"
    work.mkdir()
    os.chown(work, UID, UID)
    container = Container(
        root,
        f"holosc-{suite}-{os.getpid()}",
        tmp_path / "console.log",
        [*source_binds(), (work, "/work", False), (wheel, "/wheels", True)],
    )
    try:
        yield suite, container.start()
    finally:
        container.stop()


@pytest.fixture
def mirror(booted: tuple[str, Container], tmp_path: Path) -> Iterator[str]:
    """A registry mirror serving alpine:3.21 (a real qcow2) and its checksum file, inside
    the container's network namespace."""
    _, container = booted
    site = tmp_path / "site"
    entry = pull.entry_for("alpine:3.21")
    image = site / entry.url.split("://", 1)[1].split("/", 1)[1]
    image.parent.mkdir(parents=True)
    subprocess.run(
        [require_tool("qemu-img"), "create", "-q", "-f", "qcow2", str(image), "16M"], check=True
    )
    digest = hashlib.new(entry.algorithm, image.read_bytes()).hexdigest()
    sums = site / entry.checksum_url.split("://", 1)[1].split("/", 1)[1]
    sums.parent.mkdir(parents=True, exist_ok=True)
    sums.write_text(f"{digest}  {image.name}\n")
    server = subprocess.Popen(
        ["nsenter", "-t", str(container.leader), "-n", "--", sys.executable, "-m",
         "http.server", "--bind", "127.0.0.1", "--directory", str(site), str(MIRROR_PORT)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        yield f"http://127.0.0.1:{MIRROR_PORT}"
    finally:
        server.terminate()
        server.wait(timeout=30)


def project_dir(tmp_path: Path, kernel: Path, initramfs: dict[str, Path]) -> None:
    d = tmp_path / "work" / "life"
    d.mkdir()
    (d / "holos.yaml").write_text(PROJECT)
    shutil.copy(kernel / "vmlinuz", d / "vmlinuz")
    shutil.copy(initramfs["net"], d / "acpi.cpio.gz")
    subprocess.run(
        [require_tool("qemu-img"), "create", "-q", "-f", "qcow2", str(d / "disk.qcow2"), "32M"],
        check=True,
    )
    for path in (d, *d.iterdir()):
        os.chown(path, UID, UID)


def install_in_venv(c: Container) -> None:
    """README's user install: a venv of the user's own, holosc installed into it."""
    steps = f"python3 -m venv {VENV} && {VENV}/bin/pip install -q holosc"
    result = c.run(["sh", "-c", steps], user=True, env=OFFLINE_PIP)
    assert result.returncode == 0, f"{result.stdout}\n{result.stderr}"


def user_installs(suite: str) -> list[tuple[str, str, Path]]:
    """(how, shell command, where its helpers land) for pipx and `pip install --user`."""
    pipx_venvs = HOME / (".local/share/pipx" if suite != "bookworm" else ".local/pipx")
    return [
        ("pipx", "pipx install holosc", pipx_venvs / "venvs" / "holosc" / "bin"),
        (
            "pip --user",
            "python3 -m pip install -q --user --break-system-packages holosc",
            HOME / ".local" / "bin",
        ),
    ]


UNDO = {
    "pipx": "pipx uninstall holosc",
    "pip --user": "python3 -m pip uninstall -q -y --break-system-packages holosc",
}


def test_unprivileged_user_runs_the_whole_lifecycle(
    booted: tuple[str, Container],
    mirror: str,
    tmp_path: Path,
    guest_kernel: Path,
    initramfs: dict[str, Path],
) -> None:
    suite, c = booted
    version = SYSTEMD_VERSION[suite]
    project_dir(tmp_path, guest_kernel, initramfs)

    def holosc(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        result = c.run(
            [HOLOSC, *args], user=True, cwd="/work/life", env={"HOLOSC_IMAGE_MIRROR": mirror}
        )
        if check:
            assert result.returncode == 0, f"holosc {args}: {result.stdout}\n{result.stderr}"
        return result

    def unit_state(unit: str) -> str:
        return c.run(
            ["systemctl", "--user", "show", "-p", "ActiveState", "--value", unit], user=True
        ).stdout.strip()

    def wait_peers(inst: str, count: int) -> None:
        """Until `inst` logged `count` neighbours on its network since it booted last."""
        log = Path(f"/proc/{c.leader}/root") / (
            state / "instances" / "life" / inst / "console.log"
        ).relative_to("/")
        deadline = time.monotonic() + 240
        while True:
            boot = log.read_text(errors="replace").rsplit(READY_MARK, 1)[-1]
            peers = {line.split()[-1] for line in boot.splitlines() if PEER_MARK in line}
            if len(peers) >= count:
                return
            assert time.monotonic() < deadline, f"{inst} reached {sorted(peers)}:\n{boot[-1500:]}"
            time.sleep(1)

    def wait_ready(*instances: str, boots: int = 1) -> None:
        deadline = time.monotonic() + 300
        for inst in instances:
            log = state / "instances" / "life" / inst / "console.log"
            host_log = Path(f"/proc/{c.leader}/root") / log.relative_to("/")
            while host_log.read_text(errors="replace").count(READY_MARK) < boots:
                assert time.monotonic() < deadline, f"{inst} not ready"
                time.sleep(0.5)

    assert c.run(["systemctl", "--version"]).stdout.startswith(f"systemd {version} ")
    # The user installs holosc into a venv of their own; the helpers are linked nowhere
    # (the root's setup.sh links, gone from this container's overlay).
    c.enter(["sh", "-c", "rm -f /usr/local/bin/holos-*"])
    install_in_venv(c)
    # Lingering (an administrator's one-time step) starts a real user@1500.service.
    assert c.run(["loginctl", "enable-linger", USER]).returncode == 0
    deadline = time.monotonic() + 60
    while holosc("--version", check=False) and (
        c.run(["systemctl", "--user", "is-system-running"], user=True).stdout.strip()
        not in ("running", "degraded")
    ):
        assert time.monotonic() < deadline, "user manager did not start"
        time.sleep(0.2)
    assert c.run(["systemctl", "is-active", f"user@{UID}.service"]).stdout.strip() == "active"
    assert c.run(["id", "-u"], user=True).stdout.strip() == str(UID)
    assert c.run(["sudo", "-n", "true"], user=True).returncode != 0, "the user has no sudo"

    # doctor: the roots this manager resolves, and what the user lacks for KVM.
    doctor = json.loads(holosc("doctor", "--json", check=False).stdout)
    by_name = {check["name"]: check for check in doctor}
    state = HOME / (".local/state" if version >= 254 else ".config") / "holos"
    assert by_name["roots (user)"] == {
        "name": "roots (user)",
        "status": "ok",
        "detail": f"units {HOME}/.config/systemd/user, %S/holos {state}, "
        f"%E/holos {HOME}/.config/holos, %t/holos /run/user/{UID}/holos",
        "hint": None,
    }
    assert by_name["kvm"]["detail"].startswith("TCG will be used (slow): there is no /dev/kvm")
    assert by_name["systemd (user)"]["status"] == "ok"
    assert "old state" not in by_name
    assert by_name["linger"]["status"] == "ok", by_name["linger"]
    assert by_name["holos-seed"] == {
        "name": "holos-seed",
        "status": "ok",
        "detail": f"{VENV}/bin/holos-seed (units search {VENV}/bin first: ExecSearchPath= drop-in)",
        "hint": None,
    }
    # ps --system as this user reads the system manager (no probe unit to write).
    ps_system = holosc("ps", "--system", "-p", "life", check=False)
    assert "project 'life' is not installed" in ps_system.stderr, ps_system.stderr
    # Root running this user's holosc: the system manager must not run its helpers, and
    # up says so in one line, before it starts or writes anything.
    as_root = c.run([HOLOSC, "up", "--system"], cwd="/work/life")
    assert as_root.returncode == 5, as_root
    assert f"this holosc's are in {VENV}/bin, which the system manager must not run" in (
        as_root.stderr
    ), as_root.stderr
    assert "(hint: use your own manager (holosc --user" in as_root.stderr
    assert c.run(["test", "-e", "/etc/systemd/system/holos-life.target"]).returncode != 0
    # pipx and `pip install --user`: the units find their helpers too (no guest booted:
    # the project's switch runs holos-switch, found through the drop-in).
    for how, command, helper_dir in user_installs(suite):
        other = c.run(["sh", "-c", command], user=True, env=OFFLINE_PIP)
        assert other.returncode == 0, f"{how}: {other.stdout}\n{other.stderr}"
        installed = c.run([f"{HOME}/.local/bin/holosc", "install"], user=True, cwd="/work/life")
        assert installed.returncode == 0, f"{how}: {installed.stderr}"
        switch = "holos-life-switch.service"
        assert c.run(["systemctl", "--user", "start", switch], user=True).returncode == 0, how
        # Which holos-switch runs: the script its interpreter was given (systemd 252's
        # ExecStart property shows the bare name, not the path it resolved).
        pid = c.run(
            ["systemctl", "--user", "show", "-p", "MainPID", "--value", switch], user=True
        ).stdout.strip()
        argv = c.run(["cat", f"/proc/{pid}/cmdline"]).stdout.split("\0")
        assert f"{helper_dir}/holos-switch" in argv, (how, argv)
        assert unit_state(switch) == "active", how
        c.run(["systemctl", "--user", "stop", switch], user=True)
        removed = c.run([f"{HOME}/.local/bin/holosc", "uninstall"], user=True, cwd="/work/life")
        assert removed.returncode == 0, f"{how}: {removed.stderr}"
        undo = c.run(["sh", "-c", UNDO[how]], user=True)
        assert undo.returncode == 0, f"{how}: {undo.stderr}"

    pulled = holosc("pull", "alpine:3.21")
    assert "verified" in pulled.stderr + pulled.stdout, pulled
    tag = state / "images" / "tags" / "alpine" / "3.21"  # a symlink to its blob
    assert c.run(["test", "-L", str(tag), "-a", "-f", str(tag)]).returncode == 0

    # A failed start shows its cause from the user manager's journal: QEMU's own words
    # from db-0's start, the unit that failed first.
    yaml = tmp_path / "work" / "life" / "holos.yaml"
    good = yaml.read_text()
    yaml.write_text(good.replace("memory_mb: 128", "memory_mb: 128\n    cpu_model: nope"))
    failed = holosc("up", check=False)
    assert failed.returncode == 1, failed.stderr
    assert "db-0 failed first (exit-code): its journal from this start:" in failed.stderr
    assert "CPU model 'nope'" in failed.stderr, failed.stderr
    yaml.write_text(good)

    began = time.monotonic()
    up = holosc("up")
    print(f"E2E_METRIC rootless_up_{suite}_s={time.monotonic() - began:.1f}")
    assert "3 instance(s) running" in up.stderr and "FAILED" not in up.stderr

    ps = json.loads(holosc("ps", "--json").stdout)
    assert [(r["instance"], r["state"]) for r in ps] == [
        ("db-0", "active/running"),
        ("web-0", "active/running"),
        ("web-1", "active/running"),
    ]
    # The QEMU processes are the user's, in the user manager's cgroup.
    qemu = c.run(["pgrep", "-u", str(UID), "-c", "qemu-system"]).stdout.strip()
    assert qemu == "3", qemu
    assert not c.run(["pgrep", "-u", "0", "qemu-system"]).stdout.strip()

    wait_ready("db-0", "web-0", "web-1")
    wait_peers("web-0", 2)  # db-0 and web-1, on the default network
    # The network's sockets are the user's alone (0700, as RuntimeDirectoryMode= says).
    sockets = c.run(["sh", "-c", f"stat -c '%a %U' /run/user/{UID}/holos/s-*"]).stdout
    assert sockets.split() == ["700", USER], sockets
    logs = holosc("logs", "web", "-n", "50")
    assert "Started holos-life-web@0.service" in logs.stdout, logs.stdout
    console = holosc("logs", "db-0", "--console")
    assert READY_MARK in console.stdout

    # exec: the project key (in %S) and the forwarded SSH port; the tiny guest has no
    # sshd, so the handshake is where it stops.
    ssh = holosc("exec", "web-0", "--wait", "0", "--", "true", check=False)
    assert ssh.returncode == 255, ssh
    assert "not accessible" not in ssh.stderr, ssh.stderr  # the key exists where exec looks
    assert "Connection refused" not in ssh.stderr, ssh.stderr  # QEMU forwards the port
    # ssh-config names the user's key and pins; plain ssh -F and cp get as far as exec.
    config = holosc("ssh-config", "web-0").stdout
    assert f"  IdentityFile {state}/ssh/life/id_ed25519\n" in config, config
    assert f"  UserKnownHostsFile {state}/instances/life/web-0/known_hosts\n" in config
    assert c.run(["test", "-f", f"{state}/instances/life/web-0/known_hosts"]).returncode == 0
    (tmp_path / "work" / "ssh_config").write_text(config)  # /work in the container
    plain = c.run(["ssh", "-F", "/work/ssh_config", "web-0.life", "true"], user=True)
    assert plain.returncode == 255 and "Connection refused" not in plain.stderr, plain
    assert "Permission denied" not in plain.stderr, plain.stderr  # the key was readable
    copy = holosc("cp", "/work/life/holos.yaml", "web-0:/tmp", check=False)
    assert copy.returncode == 5 and "Connection refused" not in copy.stderr, copy

    # The switch dies (systemd starts a new one) and web restarts: its guests reach
    # their neighbours again, with nobody acting.
    switch = "holos-life-switch.service"
    assert c.run(["systemctl", "--user", "kill", "-s", "KILL", switch], user=True).returncode == 0
    assert "stop done" in holosc("stop", "web").stderr
    assert unit_state("holos-life-web@0.service") == "inactive"
    assert unit_state("holos-life-db@0.service") == "active"
    # Snapshots in the user's state directory: db live over its QMP socket, web offline
    # (qemu-img); pause and unpause reach the user's QEMU; web's restore starts it.
    save = holosc("snapshot", "save", "s1")
    assert "db-0: saved snapshot s1 (live: root, data)" in save.stdout, save.stdout
    assert "web-0: saved snapshot s1 (offline: root)" in save.stdout, save.stdout
    listed = json.loads(holosc("snapshot", "list", "--json").stdout)
    assert [(s["instance"], s["disks"]) for s in listed] == [
        ("db-0", ["root", "data"]),
        ("web-0", ["root"]),
        ("web-1", ["root"]),
    ], listed
    holosc("pause", "db")
    assert json.loads(holosc("ps", "db", "--json").stdout)[0]["state"] == "active/paused"
    holosc("unpause", "db")
    restore = holosc("snapshot", "restore", "s1", "web")
    assert "web-1: disks at snapshot s1 (root)" in restore.stdout, restore.stdout
    holosc("start", "web")
    assert unit_state("holos-life-web@1.service") == "active"
    wait_ready("web-0", "web-1", boots=2)
    assert unit_state(switch) == "active"
    wait_peers("web-0", 2)

    holosc("down")
    assert not c.run(["pgrep", "-u", str(UID), "qemu-system"]).stdout.strip()
    kept = c.run(["find", str(state / "instances" / "life"), "-type", "f"]).stdout.split()
    assert sorted(kept) == [  # the console logs, until the next up
        str(state / "instances" / "life" / i / "console-before-down.log")
        for i in ("db-0", "web-0", "web-1")
    ], kept
    assert c.run(["test", "-f", str(state / "volumes" / "life" / "data.qcow2")]).returncode == 0

    # install --enable with lingering: the project starts with the user manager.
    holosc("install", "--enable")
    link = HOME / ".config/systemd/user/default.target.wants/holos-life.target"
    assert c.run(["test", "-L", str(link)]).returncode == 0
    assert c.run(["systemctl", "restart", f"user@{UID}.service"]).returncode == 0
    deadline = time.monotonic() + 300
    while unit_state("holos-life-web@1.service") != "active":
        assert time.monotonic() < deadline, "the enabled project did not start with the manager"
        time.sleep(0.5)
    wait_ready("db-0", "web-0", "web-1")  # down removed the disks and console logs
    holosc("stop")
    assert "uninstalled life" in holosc("uninstall").stderr
    assert c.run(["test", "-e", str(link)]).returncode != 0
    left = c.run(["sh", "-c", f"ls {HOME}/.config/systemd/user"], user=True).stdout.split()
    assert left == ["default.target.wants", "holos-roots.service"] or left == [
        "holos-roots.service"
    ], left

    if version >= 254:  # state where systemd 252 kept it is reported, with the way out
        c.run(["mkdir", "-p", f"{HOME}/.config/holos/instances"], user=True)
        old = {
            check["name"]: check
            for check in json.loads(holosc("doctor", "--json", check=False).stdout)
        }["old state"]
        assert old["status"] == "warn" and f"mv -n {HOME}/.config/holos/instances" in old["hint"]
