"""holos-bake's use of QEMU, against this host's real qemu-system-x86_64 (QEMU 7.2 on
Debian 12, 10 in the Debian 13 lane): the builder's command line starts, QMP answers
through qemu.qmp, and `blockdev-snapshot-sync` closes a layer while the VM runs (later
writes go to the new overlay on it). No guest OS is needed for that; the steps over SSH
and the ACPI shutdown are covered with real guests by tests/e2e/test_build.py.
"""

from __future__ import annotations

import contextlib
import json
import os
import pty
import select
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from holos_runtime import bake
from holos_runtime.imagecache import backing_file

from holosc.core import layout
from tests.conftest import require_tool
from tests.test_untrusted_images import PROJECT, bake_project


@pytest.mark.parametrize("firmware", ["bios", "uefi"])
def test_the_builder_snapshots_a_layer_while_it_runs(tmp_path: Path, firmware: str) -> None:
    require_tool("qemu-system-x86_64")
    qemu_img = require_tool("qemu-img")
    base = tmp_path / "base.qcow2"
    subprocess.run([qemu_img, "create", "-q", "-f", "qcow2", str(base), "32M"], check=True)
    first, second = tmp_path / "a, layer.qcow2", tmp_path / "second.qcow2"  # a comma: escaped
    bake.create_layer(first, str(base), "qcow2")
    vm_spec: dict[str, object] = {"memory_mb": 64}
    if firmware == "uefi":  # the compiled list of OVMF locations (holosc.core.layout)
        vm_spec["ovmf_pairs"] = [list(pair) for pair in layout.OVMF_PAIRS]
    plan = bake.Plan("p", "web", str(base), "qcow2", "0" * 64, (), vm_spec)
    vm = bake.VM(tmp_path, plan, lambda line: None)
    try:
        vm.start(first)
        vm.snapshot(second)
        reply = vm.qmp.cmd_obj({"execute": "query-block"})
        (root,) = [d for d in reply["return"] if d["device"] == "root"]
        assert root["inserted"]["file"] == str(second)
        assert root["inserted"]["image"]["backing-image"]["filename"] == str(first)
        flash = [d for d in reply["return"] if d["device"].startswith("pflash")]
        assert len(flash) == (2 if firmware == "uefi" else 0), flash
    finally:
        vm.kill()
    info = subprocess.run(
        [qemu_img, "info", "--output=json", "-U", str(second)],
        check=True,
        capture_output=True,
        text=True,
    )
    assert json.loads(info.stdout)["backing-filename"] == str(first)
    # The commit's header rewrite names the parent relatively, without opening it.
    bake.rebase(second, "parent.qcow2", "qcow2")
    assert backing_file(second) == "parent.qcow2"


def test_a_builder_qemu_that_exits_at_start_is_a_runtime_error(tmp_path: Path) -> None:
    """QEMU opens its QMP socket before it checks -cpu: the builder connects, QEMU exits,
    and holosc says what QEMU said (exit 5), not a traceback (exit 70)."""
    require_tool("qemu-system-x86_64")
    base = tmp_path / "base.qcow2"
    subprocess.run(
        [require_tool("qemu-img"), "create", "-q", "-f", "qcow2", base, "32M"], check=True
    )

    baked = bake_project(tmp_path, base, cpu="bogus")

    assert baked.returncode == 5, baked.stderr
    (line,) = [x for x in baked.stderr.splitlines() if x.startswith("holosc: error:")]
    assert line.startswith("holosc: error: build of web failed: the builder's QEMU exited "), line
    assert "CPU model 'bogus'" in line, line  # QEMU's own words
    assert "Traceback" not in baked.stderr
    layers_dir = tmp_path / "state" / "images" / "layers"
    assert [p.name for p in layers_dir.iterdir()] == [], "nothing of the build stays"


def _read_until(leader: int, wanted: bytes, seen: bytearray, timeout: float) -> None:
    """Read the terminal's output into `seen` until `wanted` is in it."""
    deadline = time.monotonic() + timeout
    while wanted not in seen:
        left = deadline - time.monotonic()
        assert left > 0, f"no {wanted!r} in {bytes(seen)!r}"
        ready, _, _ = select.select([leader], [], [], left)
        if ready:
            with contextlib.suppress(OSError):  # EIO: the terminal has no writer left
                data = os.read(leader, 65536)
                assert data, bytes(seen)
                seen += data


def test_bake_shows_the_builder_boot_and_what_ctrl_c_left(tmp_path: Path) -> None:
    """A builder that never boots (an empty disk: SeaBIOS finds nothing to boot), on a
    pseudo-terminal: its boot is one updating line with the seconds going on; Ctrl-C stops
    it and says what is cached and where the next build goes on. The step counter counts
    the seal (the steps of a whole build are covered by tests/e2e/test_build.py)."""
    require_tool("qemu-system-x86_64")
    project = tmp_path / "project"
    project.mkdir()
    subprocess.run(
        [require_tool("qemu-img"), "create", "-q", "-f", "qcow2", project / "base.qcow2", "32M"],
        check=True,
    )
    (project / "holos.yaml").write_text(PROJECT.replace("CPU", "max"))
    (project / "Dockerfile").write_text("FROM debian:12\nRUN true\nRUN echo two\n")
    env = dict(os.environ, HOLOSC_STATE_DIR=str(tmp_path / "state"), HOLOS_ACCEL="tcg")
    env.pop("NO_COLOR", None)
    leader, follower = pty.openpty()
    proc = subprocess.Popen(
        [sys.executable, "-m", "holosc", "bake"],
        cwd=project, env=env, stdin=follower, stdout=follower, stderr=follower,
        start_new_session=True,
    )  # fmt: skip
    os.close(follower)
    seen = bytearray()
    try:
        _read_until(leader, b"p/web: starting the builder VM for steps 1-3 of 3\r\n", seen, 120)
        # Redrawn in place (up to the block's line, cleared) while the seconds go on.
        _read_until(leader, b"\x1b[1F\x1b[Jp/web: builder VM booting, 3 s", seen, 120)
        os.killpg(proc.pid, signal.SIGINT)
        _read_until(leader, b"goes on from step 1\r\n", seen, 60)
        assert proc.wait(timeout=60) == 130
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        os.close(leader)
    text = seen.decode(errors="replace")
    assert (
        "p/web: interrupted while the builder VM was booting; the builder VM is stopped and "
        "no step is cached yet: holosc bake (or up) goes on from step 1" in text
    ), text
    assert "Traceback" not in text, text
    builders = subprocess.run(["pgrep", "-f", f"qemu-system.*{tmp_path}"], capture_output=True)
    assert not builders.stdout.strip(), "the builder VM is stopped"
