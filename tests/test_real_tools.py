"""The golden outputs, checked by the real tools that will consume them.

systemd-analyze verify (any output fails), shellcheck, cloud-init's own schema check and
network-config conversion, isoinfo reading every seed back, and real QEMU (TCG) starting
every launch script paused, answering QMP, then quitting.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from holos_runtime.imagecache import Cache
from holos_runtime.layers import LayerRecord, Layers

from holosc.core.compiler import Output
from holosc.core.model import MountKind
from holosc.core.plan import build_plan
from tests.conftest import (
    build_example,
    cloud_config_verdict,
    compile_example,
    example_names,
    require_tool,
)
from tests.staging import run_seed, verify_root, write_output

NAMES = example_names()


def run(argv: list[str], **kwargs: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        argv, capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL, **kwargs
    )  # type: ignore[call-overload]


@pytest.fixture(scope="module", params=NAMES)
def compiled(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> tuple[str, Output, Path]:
    name = request.param
    output = compile_example(name)
    out = tmp_path_factory.mktemp(name)
    write_output(output, out)
    return name, output, out


def test_systemd_analyze_verify(compiled: tuple[str, Output, Path], tmp_path: Path) -> None:
    name, output, _ = compiled
    tool = require_tool("systemd-analyze")
    project = build_example(name).project.name
    units = verify_root(output, tmp_path / "root", project)
    checked = 0
    for unit in sorted(units.iterdir()):
        arg = str(unit)
        if unit.name.endswith("@.service"):
            arg += ":" + unit.name.replace("@.service", "@0.service")
        result = run([tool, "verify", "--recursive-errors=no", f"--root={tmp_path / 'root'}", arg])
        assert (result.returncode, result.stdout + result.stderr) == (0, ""), unit.name
        checked += 1
    assert checked >= 2


def test_shellcheck(compiled: tuple[str, Output, Path]) -> None:
    _, _, out = compiled
    scripts = sorted(str(p) for p in out.rglob("*.sh"))
    assert scripts
    result = run([require_tool("shellcheck"), "--severity=style", *scripts])
    assert result.returncode == 0, result.stdout + result.stderr


def test_cloud_init_schema(compiled: tuple[str, Output, Path], tmp_path: Path) -> None:
    _, _, out = compiled
    tool = require_tool("cloud-init")
    for user_data in sorted(out.rglob("user-data")):
        assert not (verdict := cloud_config_verdict(user_data)), verdict
    for network in sorted(out.rglob("network-config")):
        dest = tmp_path / network.parent.name
        result = run(
            [
                tool,
                "devel",
                "net-convert",
                "--network-data",
                str(network),
                "--kind",
                "yaml",
                "--output-kind",
                "networkd",
                "--distro",
                "debian",
                "--directory",
                str(dest),
            ]
        )
        assert result.returncode == 0, result.stderr
        rendered = "".join(p.read_text() for p in dest.rglob("*.network"))
        assert "Address=10.10." in rendered and "DHCP=ipv4" in rendered, rendered


def test_seed_built_at_start_reads_back(compiled: tuple[str, Output, Path], tmp_path: Path) -> None:
    """holos-seed joins each instance's compiled texts with this host's keys: isoinfo reads
    the three texts back byte for byte (Rock Ridge and Joliet), and cloud-init accepts the
    vendor-data."""
    name, _, out = compiled
    tool = require_tool("isoinfo")
    project = build_example(name).project.name
    instances = sorted(p.parent for p in out.rglob("user-data"))
    assert instances and not list(out.rglob("seed.iso"))
    for inst in instances:
        state = tmp_path / "state" / inst.name
        state.mkdir(parents=True)
        seed = tmp_path / f"{inst.name}.iso"
        key = tmp_path / "ssh" / project / "id_ed25519"
        run_seed(inst, state, key, f"{inst.name}.{project}.holos", seed)
        info = run([tool, "-d", "-i", str(seed)]).stdout
        assert "Volume id: cidata" in info
        for file in ("user-data", "meta-data", "network-config"):
            for flag in ("-R", "-J"):
                data = run([tool, "-i", str(seed), flag, "-x", f"/{file}"]).stdout
                assert data == (inst / file).read_text(), (seed, file, flag)
        vendor = tmp_path / "vendor-data"
        vendor.write_text(run([tool, "-i", str(seed), "-R", "-x", "/vendor-data"]).stdout)
        assert (key.with_name("id_ed25519.pub").read_text().strip()) in vendor.read_text()
        assert not (verdict := cloud_config_verdict(vendor)), verdict


def _qmp(path: Path, *commands: str) -> list[dict[str, object]]:
    """Send QMP commands over a Unix socket (plain JSON, no library: an independent check)."""
    replies = []
    with socket.socket(socket.AF_UNIX) as sock:
        sock.settimeout(20)
        sock.connect(str(path))
        stream = sock.makefile("rwb")
        json.loads(stream.readline())  # greeting
        for command in ("qmp_capabilities", *commands):
            stream.write(json.dumps({"execute": command}).encode() + b"\n")
            stream.flush()
            while True:
                reply = json.loads(stream.readline())
                if "event" not in reply:
                    break
            replies.append(reply)
    return replies


def _as_if_built(cache: Cache, project: str, service: str, base: Path, fmt: str) -> None:
    store = Layers(cache)
    key = hashlib.sha256(f"{project}/{service}".encode()).hexdigest()
    work = store.work_dir()
    layer = work / f"{key}.qcow2"
    argv = ["qemu-img", "create", "-q", "-f", "qcow2", "-F", fmt, "-b", str(base), str(layer)]
    run(argv, check=True)
    store.commit(layer, LayerRecord(key, "base", "seal", project, service, "now"))
    work.rmdir()
    store.set_tag(project, service, key)


def _prepare_host(name: str, base: Path, kernel: Path) -> None:
    """Small real disks and files where the launch scripts expect the project's inputs."""
    project = build_example(name).project
    img = require_tool("qemu-img")
    images, volumes = base / "holos" / "images", base / "holos" / "volumes" / project.name
    images.mkdir(parents=True)
    volumes.mkdir(parents=True)
    for service in project.services:
        image = service.image
        target = base / "project" / (image.path or f"{image.name}-{image.tag}.{image.format}")
        target.parent.mkdir(parents=True, exist_ok=True)
        if not target.exists():
            run([img, "create", "-q", "-f", image.format, str(target), "64M"], check=True)
        if image.is_registry:  # as if pulled: a blob in the cache and its tag
            Cache(images).adopt(target, f"{image.name}:{image.tag}", "sha256", image.format)
        if service.build is not None:  # as if built: a layer on the base and the build tag
            _as_if_built(Cache(images), project.name, service.name, target, image.format)
        for path in (service.vm.kernel, service.vm.initrd):
            if path:
                (base / "project" / path).write_bytes(kernel.read_bytes())
        for mount in service.mounts:
            if mount.kind is MountKind.BIND:
                (base / "project" / mount.source).mkdir(parents=True, exist_ok=True)
            else:
                vol = volumes / f"{mount.source}.qcow2"
                if not vol.exists():
                    run([img, "create", "-q", "-f", "qcow2", str(vol), "16M"], check=True)


@pytest.mark.parametrize("name", NAMES)
def test_qemu_accepts_every_launch_script(name: str, tmp_path: Path, guest_kernel: Path) -> None:
    """Each launch.sh runs real qemu-system-x86_64 (-S added by a PATH shim), which must
    daemonize, answer QMP as paused, and quit. VFIO passthrough needs real hardware, so
    instances with devices are compiled-only here."""
    require_tool("qemu-system-x86_64")
    output = compile_example(name)
    project = build_example(name).project
    plan = build_plan(project)
    base = tmp_path
    (base / "project").mkdir()
    _prepare_host(name, base, guest_kernel / "vmlinuz")
    artifacts = base / "etc" / project.name
    write_output(output, base / "etc")
    (artifacts / "project").symlink_to(base / "project")
    shim = base / "shim"
    shim.mkdir()
    (shim / "qemu-system-x86_64").write_text(
        '#!/bin/sh\nexec /usr/bin/qemu-system-x86_64 "$@" -S\n'
    )
    (shim / "qemu-system-x86_64").chmod(0o755)
    volumes = base / "holos" / "volumes" / project.name
    started = 0
    for inst in plan.instances:
        if inst.service.devices:
            continue
        state = base / "holos" / "instances" / project.name / inst.name
        run_dir = base / "run" / inst.name
        state.mkdir(parents=True)
        run_dir.mkdir(parents=True)
        key = base / "holos" / "ssh" / project.name / "id_ed25519"
        alias = f"{inst.name}.{project.name}.holos"
        run_seed(artifacts / inst.name, state, key, alias, run_dir / "seed.iso")
        env = dict(
            os.environ,
            HOLOS_ACCEL="tcg",
            # holos-image of the checkout under test (launch.sh names it bare).
            PATH=f"{shim}:{Path(sys.executable).parent}:{os.environ['PATH']}",
            # Not in StateDirectory= order: systemd does not keep it either.
            STATE_DIRECTORY=f"{base / 'holos/images'}:{state}:{volumes}",
            RUNTIME_DIRECTORY=str(run_dir),
        )
        # A file, not a pipe: virtiofsd stays in the background holding its stderr.
        log = base / f"{inst.name}.log"
        with log.open("w") as handle:
            rc = subprocess.run(
                [str(artifacts / inst.name / "launch.sh")],
                env=env,
                stdout=handle,
                stderr=handle,
                stdin=subprocess.DEVNULL,
                timeout=120,
            ).returncode
        assert rc == 0, f"{inst.name}: {log.read_text()}"
        pid = int((run_dir / "qemu.pid").read_text())
        try:
            (status,) = _qmp(run_dir / "qmp.sock", "query-status")[1:]
            assert status == {
                "return": {"status": "prelaunch", "singlestep": False, "running": False}
            } or status["return"]["status"] in ("prelaunch", "paused"), status  # type: ignore[index]
            _qmp(run_dir / "qmp.sock", "quit")
            for _ in range(100):
                if not Path(f"/proc/{pid}").exists():
                    break
                time.sleep(0.05)
            assert not Path(f"/proc/{pid}").exists(), "QEMU did not quit"
        finally:
            if Path(f"/proc/{pid}").exists():
                os.kill(pid, signal.SIGKILL)
        assert (state / "root.qcow2").exists()
        started += 1
    assert started or all(i.service.devices for i in plan.instances)
