"""Compiled VMs boot and work: two guests of the test image, run WITHOUT systemd.

The compiled artifacts are laid out as the units would find them (artifacts with a
`project` link, STATE_DIRECTORY "instance:volumes:images", RUNTIME_DIRECTORY), the
volumes script and each launch.sh are run by hand, and everything runs inside a private
network namespace with only `lo` up: QEMU's inter-VM multicast (localaddr=127.0.0.1) and
its host forwards never touch the machine's network. Checks go through SSH with the
project key as the compiled user. Timings are printed as `E2E_METRIC name=value`.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from holosc.compiler import compile_project
from holosc.load import load_file
from holosc.validate import build_project
from tests.conftest import require_tool
from tests.staging import write_output

TIMEOUT = 600.0  # TCG boots take ~40 s alone, 190-270 s on a machine busy with other tests
SHARED = "hello from the host\n"
PAGE = "served by web-0\n"

HOLOS_YAML = """\
name: e2e
x-guest: &guest
  image: ./guest/base.raw
  vm:
    memory_mb: 512
    kernel: ./guest/vmlinuz
    initrd: ./guest/initrd.img
    cmdline: root=/dev/vda rw console=ttyS0
  cloud_init:
    user: holos
services:
  db:
    <<: *guest
    volumes: ["data:/var/lib/data"]
  web:
    <<: *guest
    depends_on: [db]
    ports: ["8080:80"]
    volumes: ["./share:/srv/share:ro"]
    cloud_init:
      user: holos
      write_files:
        - path: /srv/www/index.txt
          content: "served by web-0\\n"
      runcmd:
        - systemd-run --unit=holos-www --working-directory=/srv/www python3 -m http.server 80
volumes:
  data: {size: 256M}
"""


def metric(config: pytest.Config, name: str, value: float) -> None:
    """Print a timing even when pytest captures output."""
    capture = config.pluginmanager.getplugin("capturemanager")
    with capture.global_and_fixture_disabled():
        print(f"\nE2E_METRIC {name}={value:.1f}", flush=True)


class Stack:
    """The compiled project, its private netns and the running QEMU processes."""

    def __init__(self, base: Path, config: pytest.Config) -> None:
        self.base = base
        self.config = config
        self.key = base / "key"
        self.netns_holder: subprocess.Popen[bytes] | None = None
        self.lock: dict[str, dict[str, object]] = {}
        self.artifacts = base / "etc" / "e2e"
        # As StateDirectory= lays them out: the launch scripts find them by name.
        self.volumes = base / "holos" / "volumes" / "e2e"

    # -- the private network namespace ------------------------------------------------
    def enter_netns(self) -> None:
        self.netns_holder = subprocess.Popen(["unshare", "--net", "sleep", "infinity"])
        ns = f"/proc/{self.netns_holder.pid}/ns/net"
        for _ in range(100):  # until unshare has exec'ed sleep in the new namespace
            if os.readlink(ns) != os.readlink("/proc/self/ns/net"):
                break
            time.sleep(0.02)
        else:
            pytest.fail("unshare --net did not create a network namespace")
        self.ns(["ip", "link", "set", "lo", "up"], check=True)

    def ns(self, argv: list[str], **kwargs: object) -> subprocess.CompletedProcess[str]:
        """Run argv inside the private network namespace."""
        assert self.netns_holder is not None
        kwargs.setdefault("capture_output", True)
        kwargs.setdefault("timeout", 120)
        return subprocess.run(  # type: ignore[call-overload, no-any-return]
            ["nsenter", "-t", str(self.netns_holder.pid), "-n", *argv],
            text=True,
            stdin=subprocess.DEVNULL,
            **kwargs,
        )

    def netns_pids(self) -> list[int]:
        """Every process in the private netns but its holder (QEMU, virtiofsd, ...)."""
        assert self.netns_holder is not None
        try:
            ns = os.readlink(f"/proc/{self.netns_holder.pid}/ns/net")
        except OSError:
            return []
        pids = []
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit() and int(entry.name) != self.netns_holder.pid:
                try:
                    if os.readlink(entry / "ns" / "net") == ns:
                        pids.append(int(entry.name))
                except OSError:
                    pass
        return pids

    def cleanup(self) -> None:
        if self.netns_holder is None:
            return
        for pid in self.netns_pids():
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        self.netns_holder.kill()
        self.netns_holder.wait()

    # -- instances ---------------------------------------------------------------------
    def state(self, inst: str) -> Path:
        return self.base / "holos" / "instances" / "e2e" / inst

    def run_dir(self, inst: str) -> Path:
        return self.base / "run" / inst

    def env(self, inst: str) -> dict[str, str]:
        return dict(
            os.environ,
            HOLOS_ACCEL="tcg",
            STATE_DIRECTORY=f"{self.state(inst)}:{self.volumes}:{self.base / 'holos' / 'images'}",
            RUNTIME_DIRECTORY=str(self.run_dir(inst)),
        )

    def launch(self, inst: str) -> float:
        """Run the instance's launch.sh in the netns; returns its start time."""
        self.state(inst).mkdir(parents=True, exist_ok=True)
        self.run_dir(inst).mkdir(parents=True, exist_ok=True)
        started = time.monotonic()
        # A file, not a pipe: virtiofsd stays in the background holding its stderr.
        with (self.base / f"{inst}.launch.log").open("a") as log:
            rc = self.ns(
                [str(self.artifacts / inst / "launch.sh")],
                env=self.env(inst),
                stdout=log,
                stderr=log,
                capture_output=False,
            ).returncode
        assert rc == 0, f"{inst}: launch.sh: {(self.base / f'{inst}.launch.log').read_text()}"
        return started

    def pid(self, inst: str) -> int:
        return int((self.run_dir(inst) / "qemu.pid").read_text())

    def ssh(
        self, inst: str, command: str, timeout: float = 120
    ) -> subprocess.CompletedProcess[str]:
        info = self.lock[inst]
        return self.ns(
            [
                "ssh", "-i", str(self.key), "-p", str(info["ssh_port"]),
                "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=no",
                "-o", "UserKnownHostsFile=/dev/null", "-o", "LogLevel=ERROR",
                "-o", "ConnectTimeout=10",
                f"{info['user']}@127.0.0.1", command,
            ],
            timeout=timeout,
        )  # fmt: skip

    def check(self, inst: str, command: str) -> str:
        result = self.ssh(inst, command)
        assert result.returncode == 0, f"{inst}: {command}: {result.stdout}{result.stderr}"
        return result.stdout

    def console(self, inst: str) -> str:
        log = self.state(inst) / "console.log"
        return log.read_text(errors="replace")[-3000:] if log.exists() else "(no console log)"

    def wait_ssh(self, inst: str, started: float) -> float:
        """Seconds from launch until SSH as the compiled user works and cloud-init is done."""
        deadline = started + TIMEOUT
        while time.monotonic() < deadline:
            assert Path(f"/proc/{self.pid(inst)}").exists(), (
                f"{inst}: QEMU died\n{self.console(inst)}"
            )
            try:
                if self.ssh(inst, "true", timeout=30).returncode == 0:
                    break
            except subprocess.TimeoutExpired:
                pass
            time.sleep(2)
        else:
            pytest.fail(f"{inst}: no SSH after {TIMEOUT:.0f} s\n{self.console(inst)}")
        boot = time.monotonic() - started
        status = self.ssh(inst, "cloud-init status --wait --long", timeout=TIMEOUT)
        assert status.returncode == 0, f"{inst}: cloud-init: {status.stdout}{status.stderr}"
        return boot

    def stop(self, inst: str) -> tuple[int, float, str]:
        """holos-qmp-stop as the unit's ExecStop runs it: (exit code, seconds, output)."""
        pid = self.pid(inst)
        started = time.monotonic()
        result = subprocess.run(
            [
                require_tool("holos-qmp-stop"),
                "--qmp", str(self.run_dir(inst) / "qmp.sock"),
                "--pid", str(pid), "--grace", "60", "--instance", inst,
            ],
            capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        elapsed = time.monotonic() - started
        for _ in range(100):  # QEMU may still be tearing down; it must be gone now
            if not Path(f"/proc/{pid}").exists():
                break
            time.sleep(0.1)
        assert not Path(f"/proc/{pid}").exists(), f"{inst}: QEMU still runs after the stop"
        return result.returncode, elapsed, result.stdout + result.stderr


def _setup(base: Path, image: Path, stack: Stack) -> None:
    project = base / "project"
    (project / "share").mkdir(parents=True)
    (project / "share" / "hello.txt").write_text(SHARED)
    (project / "guest").mkdir()
    for name in ("base.raw", "vmlinuz", "initrd.img"):
        (project / "guest" / name).symlink_to(image / name)
    (project / "holos.yaml").write_text(HOLOS_YAML)
    keygen = require_tool("ssh-keygen")
    subprocess.run([keygen, "-q", "-t", "ed25519", "-N", "", "-f", str(stack.key)], check=True)
    doc = load_file(project / "holos.yaml", environ={})
    result = build_project(doc, ssh_public_key=(base / "key.pub").read_text().strip())
    assert result.project is not None, result
    output = compile_project(result.project)
    write_output(output, base / "etc")
    (stack.artifacts / "project").symlink_to(project)
    stack.lock = json.loads((base / "etc" / "holos.lock.json").read_text())["instances"]
    # What holos-e2e-volumes.service does before any instance starts.
    stack.volumes.mkdir(parents=True)
    (base / "holos" / "images").mkdir()
    subprocess.run(
        [str(stack.artifacts / "volumes.sh")],
        env=dict(os.environ, STATE_DIRECTORY=str(stack.volumes)),
        check=True,
        capture_output=True,
    )


@pytest.fixture(scope="module")
def stack(
    guest_image: Path, tmp_path_factory: pytest.TempPathFactory, pytestconfig: pytest.Config
) -> Iterator[Stack]:
    for tool in ("qemu-system-x86_64", "qemu-img", "ssh", "ssh-keygen"):
        require_tool(tool)
    if os.geteuid() != 0:
        pytest.fail("the end-to-end tests need root (network namespaces, virtiofsd)")
    base = tmp_path_factory.mktemp("e2e")
    s = Stack(base, pytestconfig)
    try:
        _setup(base, guest_image, s)
        s.enter_netns()
        started = {inst: s.launch(inst) for inst in ("db-0", "web-0")}
        for inst in ("db-0", "web-0"):
            metric(pytestconfig, f"{inst}.boot_to_ssh_s", s.wait_ssh(inst, started[inst]))
        yield s
    finally:
        s.cleanup()


def test_hostname(stack: Stack) -> None:
    for inst in ("db-0", "web-0"):
        assert stack.check(inst, "hostname").strip() == inst


def test_names_resolve_to_planned_ips(stack: Stack) -> None:
    ips = {inst: str(info["ip"]) for inst, info in stack.lock.items()}
    assert ips == {"db-0": "10.10.0.2", "web-0": "10.10.0.3"}
    # One line per name and address: the instance's own name must not also answer 127.0.1.1.
    lines = stack.check("web-0", "getent hosts db web web-0").splitlines()
    assert [line.split()[0] for line in lines] == [ips["db-0"], ips["web-0"], ips["web-0"]], lines


def test_ping_over_private_segment(stack: Stack) -> None:
    started = time.monotonic()
    for _ in range(10):  # the segment is up once cloud-init is done; allow a slow ARP
        result = stack.ssh("web-0", "ping -c1 -W5 db")
        if result.returncode == 0:
            break
    assert result.returncode == 0, result.stdout + result.stderr
    assert "(10.10.0.2)" in result.stdout and " 0% packet loss" in result.stdout, result.stdout
    metric(stack.config, "web-0.ping_db_s", time.monotonic() - started)


def test_bind_mount_is_read_only(stack: Stack) -> None:
    assert stack.check("web-0", "cat /srv/share/hello.txt") == SHARED
    fs, options = stack.check("web-0", "findmnt -no FSTYPE,OPTIONS /srv/share").split()
    assert fs == "virtiofs" and "ro" in options.split(","), (fs, options)
    denied = stack.ssh("web-0", "sudo touch /srv/share/new")
    assert denied.returncode != 0 and "Read-only file system" in denied.stderr, denied
    assert not (stack.base / "project" / "share" / "new").exists()


def test_published_port_from_host(stack: Stack) -> None:
    page = ""
    for _ in range(30):  # the server starts at the end of cloud-init
        result = stack.ns(["curl", "-sf", "--max-time", "10", "http://127.0.0.1:8080/index.txt"])
        page = result.stdout
        if result.returncode == 0:
            break
        time.sleep(2)
    assert page == PAGE, (page, stack.ssh("web-0", "systemctl status holos-www").stdout)


def test_volume_survives_qemu_restart(stack: Stack) -> None:
    target = "/var/lib/data"
    source, fs = stack.check("db-0", f"findmnt -no SOURCE,FSTYPE {target}").split()
    assert fs == "ext4", source
    assert stack.check("db-0", "readlink -f /dev/disk/by-id/virtio-vol-data").strip() == source
    stack.check("db-0", f"echo kept | sudo tee {target}/marker && sync")
    rc, seconds, out = stack.stop("db-0")
    assert rc == 0, out
    metric(stack.config, "db-0.stop_s", seconds)
    started = stack.launch("db-0")  # same state dir: same overlay, same instance-id
    metric(stack.config, "db-0.reboot_to_ssh_s", stack.wait_ssh("db-0", started))
    assert stack.check("db-0", f"mountpoint {target} && cat {target}/marker").endswith("kept\n")


def test_graceful_stop(stack: Stack) -> None:
    for inst in ("web-0", "db-0"):
        rc, seconds, out = stack.stop(inst)
        assert rc == 0, f"{inst}: holos-qmp-stop exit {rc}: {out}\n{stack.console(inst)}"
        metric(stack.config, f"{inst}.stop_s", seconds)
    assert stack.netns_pids() == [], "processes left in the netns (virtiofsd?)"
