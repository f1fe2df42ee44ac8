"""End to end: a Dockerfile built into a cached image that every replica boots (issue 15).

Real Debian guests under TCG in the private systemd (tests/e2e/test_stack.py's setup):
a bare `systemctl start` of the target builds the image in its build unit (one builder
boot); both replicas boot it and `holosc exec` finds what RUN wrote, what COPY copied, what
ADD unpacked from a local .tar.gz and the ENV value, while the boot ids prove no step ran
at their first boot. `holosc bake` of the unchanged Dockerfile boots no builder; an edit
of the last RUN rebuilds that one layer (counted builder boots and built steps); a failing
RUN fails `holosc up` with its output and exit code and leaves the cache's layers as they
were.
Timings are printed as `E2E_METRIC name=value` lines.
"""

from __future__ import annotations

import io
import re
import tarfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.test_stack import GUEST, Stack, make_project, metric
from tests.privacy import not_private
from tests.systemd_harness import PrivateSystemd

pytestmark = pytest.mark.e2e

PROJECT = (
    GUEST
    + """name: baked
services:
  app:
    <<: *guest
    replicas: 2
    dockerfile: ./app/Dockerfile
    cloud_init:
      user: holos
      runcmd:
        - hostname > /run/first-boot-hostname
"""
)
MOTD = "copied from the build context\n"
PAGE = "unpacked by ADD\n"
DOCKERFILE = """\
# image: the test guest (holos.yaml's image: replaces this FROM)
FROM debian:12
ENV GREETING="hello from ENV" APP=/opt/app
WORKDIR $APP
COPY motd.txt ./motd.txt
ADD site.tgz ./site
RUN cp /proc/sys/kernel/random/boot_id /var/lib/built-in-boot \\
 && echo "$GREETING" > greeting.txt && pwd > where.txt
RUN echo one > /etc/last-step
"""
BOOT = "starting the builder VM"
HOSTILE_STEP = r"printf 'about to fail\033]0;owned\007\033[2J\302\233\n'"
BUILT = re.compile(r"^baked/app: step (\d+)/(\d+): (?!.*: cached$)(.*)$", re.M)


@pytest.fixture
def baked(tmp_path: Path, guest_image: Path) -> Iterator[Stack]:
    sd = PrivateSystemd(tmp_path / "systemd").start()
    try:
        project = make_project(tmp_path, PROJECT, guest_image)
        (project / "app").mkdir()
        (project / "app" / "Dockerfile").write_text(DOCKERFILE)
        (project / "app" / "motd.txt").write_text(MOTD)
        (project / "app" / "site.tgz").write_bytes(site_archive(tmp_path))
        yield Stack(sd, project)
    finally:
        sd.stop()


def site_archive(tmp_path: Path) -> bytes:
    """A .tar.gz of `www/index.html`, which ADD unpacks as Docker does."""
    page = tmp_path / "index.html"
    page.write_text(PAGE)
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        tar.add(page, arcname="www/index.html")
    return buffer.getvalue()


def layers(stack: Stack) -> set[str]:
    return {p.name for p in (stack.sd.state / "var-lib-holos" / "images" / "layers").iterdir()}


def test_dockerfile_builds_once_and_replicas_boot_it(baked: Stack) -> None:
    stack = baked
    # A bare start of the target: the build unit builds, then the instances boot.
    stack.must("install")
    began = time.monotonic()
    stack.sd.run(["systemctl", "start", "holos-baked.target"], timeout=1800)
    metric("build_cold_and_start_s", time.monotonic() - began)
    log = stack.journal("holos-baked-app-build.service")
    assert log.count(BOOT) == 1, log
    # What the Dockerfile put in the image is the manager's alone (built by the unit).
    images = stack.sd.state / "var-lib-holos" / "images"
    assert not_private(images) == {}
    assert [m[3] for m in BUILT.finditer(log)] == [
        "COPY motd.txt ./motd.txt",
        "ADD site.tgz ./site",
        'RUN cp /proc/sys/kernel/random/boot_id /var/lib/built-in-boot && echo "$GREETING" > '
        "greeting.txt && pwd > where.txt",
        "RUN echo one > /etc/last-step",
        "sealing the image",
    ], log
    # Counted with the seal, which is the last of them.
    assert [(m[1], m[2]) for m in BUILT.finditer(log)] == [(str(i), "5") for i in range(1, 6)]
    assert f"{BOOT} for steps 1-5 of 5" in log, log

    boots = set()
    for inst in ("app-0", "app-1"):
        wait_booted(stack, inst)
        assert stack.exec(inst, "cat /opt/app/motd.txt") == MOTD
        assert stack.exec(inst, "cat /opt/app/site/www/index.html") == PAGE
        assert stack.exec(inst, "cat /opt/app/greeting.txt") == "hello from ENV\n"
        assert stack.exec(inst, "cat /opt/app/where.txt") == "/opt/app\n"
        assert stack.exec(inst, 'echo "$GREETING"') == "hello from ENV\n"  # the image's ENV
        # cloud_init still applies per instance, on top of the built image.
        assert stack.exec(inst, "cat /run/first-boot-hostname") == f"{inst}\n"
        # The RUN ran in the builder's boot, not in this one: no provisioning at first boot.
        built_in = stack.exec(inst, "cat /var/lib/built-in-boot")
        assert built_in != stack.exec(inst, "cat /proc/sys/kernel/random/boot_id")
        boots.add(built_in)
        log = stack.exec(inst, "sudo cat /var/log/cloud-init.log")
        assert "greeting" not in log and "last-step" not in log
    assert len(boots) == 1, boots  # both replicas boot the one build
    ids = {stack.exec(i, "cat /etc/machine-id") for i in ("app-0", "app-1")}
    assert len(ids) == 2, ids  # sealed: each replica is a machine of its own
    # ... and nothing of the builder's access stayed in the image.
    keys = stack.exec("app-0", "sudo cat /root/.ssh/authorized_keys 2>/dev/null; true")
    assert "holos-builder" not in keys, keys

    # Unchanged: no builder at all.
    before = layers(stack)
    began = time.monotonic()
    again = stack.must("bake")
    metric("build_cache_hit_s", time.monotonic() - began)
    assert BOOT not in again.stderr and "no builder started" in again.stderr, again.stderr
    assert layers(stack) == before

    # Only the last RUN changed: one builder boot, that step (and the seal) built.
    dockerfile = stack.project / "app" / "Dockerfile"
    dockerfile.write_text(DOCKERFILE.replace("echo one", "echo two"))
    began = time.monotonic()
    edit = stack.must("bake")
    metric("build_one_layer_s", time.monotonic() - began)
    assert edit.stderr.count(BOOT) == 1, edit.stderr
    built = [m[3] for m in BUILT.finditer(edit.stderr)]
    assert built == ["RUN echo two > /etc/last-step", "sealing the image"], edit.stderr
    assert [m[1] for m in BUILT.finditer(edit.stderr)] == ["4", "5"], edit.stderr
    assert f"{BOOT} for steps 4-5 of 5" in edit.stderr, edit.stderr
    assert edit.stderr.count(": cached") == 3, edit.stderr
    assert not_private(images) == {}  # ... and by holosc bake, under its caller's umask
    # Running replicas keep their disks until asked; --recreate moves them.
    up = stack.must("up")
    assert "app-0 keeps its disk: the build of app moved" in up.stderr, up.stderr
    stack.must("up", "--recreate")
    for inst in ("app-0", "app-1"):
        wait_booted(stack, inst)
        assert stack.exec(inst, "cat /etc/last-step") == "two\n"

    # A failing RUN fails `up` with its output and exit code; the cache keeps its layers.
    # Its output reaches the terminal escaped (a title change, a screen clear, a C1 CSI).
    before = layers(stack)
    dockerfile.write_text(dockerfile.read_text() + f"RUN {HOSTILE_STEP} >&2; exit 7\n")
    failed = stack.holosc("up")
    assert failed.returncode == 1, failed.stderr
    assert "about to fail\\x1b]0;owned\\x07\\x1b[2J\\x9b" in failed.stderr, failed.stderr
    assert not re.search("[\x1b\x07\x9b]", failed.stderr), failed.stderr
    assert "exit code 7" in failed.stderr, failed.stderr
    assert failed.stderr.count(BOOT) == 1, failed.stderr
    assert layers(stack) == before
    assert not list((stack.sd.state / "var-lib-holos" / "images" / "layers").glob(".work-*"))
    stack.must("down")
    assert stack.qemus() == []


def wait_booted(stack: Stack, inst: str, timeout: float = 900) -> None:
    """Until cloud-init finished in the guest (exec retries while sshd is not up)."""
    deadline = time.monotonic() + timeout
    while True:
        result = stack.holosc("exec", "-w", "600", inst, "--", "test", "-f", BOOTED)
        if result.returncode == 0:
            return
        assert time.monotonic() < deadline, result.stderr + stack.diagnose()
        time.sleep(3)


BOOTED = "/var/lib/cloud/instance/boot-finished"
