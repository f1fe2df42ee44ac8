"""holos-bake's use of QEMU, against this host's real qemu-system-x86_64 (QEMU 7.2 on
Debian 12, 10 in the Debian 13 lane): the builder's command line starts, QMP answers
through qemu.qmp, and `blockdev-snapshot-sync` closes a layer while the VM runs (later
writes go to the new overlay on it). No guest OS is needed for that; the steps over SSH
and the ACPI shutdown are covered with real guests by tests/e2e/test_build.py.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from holos_runtime import bake
from holos_runtime.imagecache import backing_file

from holosc.core import layout
from tests.conftest import require_tool


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
