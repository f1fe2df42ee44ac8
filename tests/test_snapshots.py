"""Snapshot sizes and qemu-img's view of the disks, on real qcow2 files (qemu-img and
qemu-io, no guest): the figure `snapshot list` shows is what deleting frees. Snapshots of
booted guests are in tests/test_lifecycle.py, tests/e2e/test_stack.py and the rootless
test."""

from __future__ import annotations

import subprocess
from pathlib import Path

from holosc.host import disktags, snapsize
from tests.conftest import require_tool

MIB = 1 << 20
CLUSTER = 64 << 10


def _qemu_io(disk: Path, command: str) -> None:
    subprocess.run(
        [require_tool("qemu-io"), "-f", "qcow2", "-c", command, str(disk)],
        check=True,
        capture_output=True,
    )


def test_a_snapshot_keeps_what_was_overwritten_since(tmp_path: Path) -> None:
    disk = tmp_path / "a,b.qcow2"  # a comma: --image-opts doubles it
    subprocess.run(
        [require_tool("qemu-img"), "create", "-q", "-f", "qcow2", str(disk), "64M"], check=True
    )
    _qemu_io(disk, "write -P 1 0 4M")
    disktags.snapshot("-c", "holos/db-0/a", disk)
    _qemu_io(disk, "write -P 2 0 2M")
    disktags.snapshot("-c", "holos/db-0/b", disk)
    assert set(disktags.tags(disk)) == {"holos/db-0/a", "holos/db-0/b"}
    # a: the 2 MiB overwritten since, its own copy of the L2 table, its L1 table.
    assert snapsize.exclusive(disk, "holos/db-0/a") == 2 * MIB + 2 * CLUSTER
    # b: nothing written since but its L1 table.
    assert snapsize.exclusive(disk, "holos/db-0/b") == CLUSTER
    assert snapsize.exclusive(disk, "holos/db-0/none") is None
    before = disk.stat().st_blocks
    disktags.snapshot("-d", "holos/db-0/a", disk)
    # What qemu-img discarded is what the listing said.
    assert (before - disk.stat().st_blocks) * 512 >= 2 * MIB
    disktags.snapshot("-a", "holos/db-0/b", disk)
    assert list(disktags.tags(disk)) == ["holos/db-0/b"]


def test_a_file_that_is_no_qcow2_has_no_size(tmp_path: Path) -> None:
    raw = tmp_path / "raw"
    raw.write_bytes(b"\0" * 4096)
    assert snapsize.exclusive(raw, "holos/x-0/y") is None
    assert snapsize.exclusive(tmp_path / "missing", "holos/x-0/y") is None
