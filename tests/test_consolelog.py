"""Console logs a guest can grow without limit (issue 22, class 8): read from the end in
bounded memory, and cut on disk while QEMU keeps appending."""

from __future__ import annotations

import os
import resource
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from holos_runtime import consolelog

from tests.conftest import EXAMPLES, REPO


@pytest.mark.parametrize(
    ("data", "lines", "expected"),
    [
        (b"a\nb\nc\n", 2, b"b\nc\n"),
        (b"a\nb\nc", 2, b"b\nc"),  # a last line without its newline counts
        (b"a\r\nb\r\n", 5, b"a\r\nb\r\n"),  # fewer lines than asked
        (b"", 3, b""),
        (b"a\nb\n", 0, b""),
        (b"x" * 200_000 + b"\nlast\n", 1, b"last\n"),
    ],
)
def test_tail_reads_the_last_lines(
    tmp_path: Path, data: bytes, lines: int, expected: bytes
) -> None:
    log = tmp_path / "console.log"
    log.write_bytes(data)
    assert consolelog.tail(log, lines) == expected


def test_tail_of_a_huge_log_reads_only_its_end(tmp_path: Path) -> None:
    """A 64 GiB (sparse) log, most of it one endless line: the tail stops at TAIL_LIMIT."""
    log = tmp_path / "console.log"
    with log.open("wb") as f:
        f.truncate(64 << 30)
        f.write(b"")
    with log.open("ab") as f:
        f.write(b"\none\ntwo\n")
    assert consolelog.tail(log, 2) == b"one\ntwo\n"
    assert len(consolelog.tail(log, 3)) == consolelog.TAIL_LIMIT  # the long line, cut


def fake_install(tmp_path: Path) -> dict[str, str]:
    """The tiny-guest project installed into directories of the test (no systemd asked)."""
    project = tmp_path / "p"
    shutil.copytree(EXAMPLES / "tiny-guest", project)
    env = dict(
        os.environ,
        HOLOSC_UNIT_DIR=str(tmp_path / "units"),
        HOLOSC_CONFIG_DIR=str(tmp_path / "etc"),
        HOLOSC_STATE_DIR=str(tmp_path / "state"),
        HOLOSC_RUNTIME_DIR=str(tmp_path / "run"),
        HOLOSC_SYSTEMCTL="true",
        PYTHONPATH=str(REPO),
    )
    installed = subprocess.run(
        [sys.executable, "-m", "holosc", "install"], cwd=project, env=env, capture_output=True
    )
    assert installed.returncode == 0, installed.stderr
    return env


def test_logs_console_memory_does_not_grow_with_the_log(tmp_path: Path) -> None:
    """`logs --console -n 5` of a 4 GiB log under a 1 GiB address-space limit: the code
    before read the whole file (358 MB of memory for a 120 MiB log). What it prints is
    the guest's: escaped."""
    env = fake_install(tmp_path)
    log = tmp_path / "state" / "instances" / "tiny" / "db-0" / "console.log"
    log.parent.mkdir(parents=True)
    with log.open("wb") as f:
        f.truncate(4 << 30)
    with log.open("ab") as f:
        f.write(b"".join(b"line %d\x1b[2J\r\n" % i for i in range(10)))

    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (1 << 30, 1 << 30))

    done = subprocess.run(
        [sys.executable, "-m", "holosc", "logs", "--console", "-n", "5", "db-0"],
        cwd=tmp_path / "p",
        env=env,
        capture_output=True,
        text=True,
        preexec_fn=limit,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    # What the guest wrote, its escape sequences shown (the command's streams escape).
    expected = "".join(f"line {i}\\x1b[2J\n" for i in range(5, 10))
    assert done.stdout == "==> db-0 <==\n" + expected


def test_trim_cuts_the_beginning_while_a_writer_appends(tmp_path: Path) -> None:
    """QEMU holds the log open with O_APPEND; after the cut its next line lands at the
    new end, and the end of what it wrote before is kept."""
    log = tmp_path / "console.log"
    writer = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    try:
        for i in range(40_000):
            os.write(writer, b"boot line %08d .........................................\n" % i)
        size = log.stat().st_size
        assert size > consolelog.MAX_BYTES
        removed = consolelog.trim(log)
        assert removed > 0 and log.stat().st_size == size - removed
        assert log.stat().st_size <= consolelog.KEEP_BYTES + 4096
        os.write(writer, b"after the cut\n")
    finally:
        os.close(writer)
    assert log.read_bytes().endswith(b"boot line 00039999 " + b"." * 41 + b"\nafter the cut\n")
    assert consolelog.trim(log) == 0  # under the bound: untouched


def test_trim_without_collapse_range_copies_the_tail() -> None:
    """tmpfs has no FALLOC_FL_COLLAPSE_RANGE: the tail is copied to the start."""
    shm = Path("/dev/shm")
    log = shm / f"holosc-test-console-{os.getpid()}.log"
    try:
        log.write_bytes(b"old\n" * (consolelog.MAX_BYTES // 4) + b"newest\n")
        assert consolelog.trim(log) > 0
        data = log.read_bytes()
        assert data.endswith(b"old\nnewest\n") and len(data) <= consolelog.KEEP_BYTES + 7
    finally:
        log.unlink(missing_ok=True)


def test_trim_never_follows_a_symlink(tmp_path: Path) -> None:
    victim = tmp_path / "victim"
    victim.write_bytes(b"x" * (consolelog.MAX_BYTES + 1))
    (tmp_path / "i").mkdir()
    (tmp_path / "i" / "console.log").symlink_to(victim)
    code = consolelog.main(["trim", str(tmp_path)])
    assert code == 1 and victim.stat().st_size == consolelog.MAX_BYTES + 1


def test_down_keeps_console_logs_until_the_next_up(tmp_path: Path) -> None:
    """down keeps each instance's console log (what explains a force-quit), renamed, and
    nothing else of the instance; the next up drops them. The booted flow is in
    tests/test_lifecycle.py (down) and tests/test_lifecycle_faults.py (force-quit)."""
    from holosc.core import layout
    from holosc.host import lifecycle

    state = tmp_path / "state"
    for inst, text in (("web-0", "booting...\n"), ("web-1", "")):
        d = layout.instance_state(state, "p", inst)
        d.mkdir(parents=True)
        (d / "console.log").write_text(text)
        (d / "root.qcow2").write_bytes(b"disk")
        (d / "keys").mkdir()
    assert lifecycle.keep_console_logs(state, "p") == [layout.kept_console_log(state, "p", "web-0")]
    left = sorted(str(p.relative_to(state)) for p in state.rglob("*"))
    assert left == [
        "instances",
        "instances/p",
        "instances/p/web-0",
        "instances/p/web-0/console-before-down.log",
    ]
    assert layout.kept_console_log(state, "p", "web-0").read_text() == "booting...\n"
    lifecycle.drop_kept_console_logs(state, "p")
    assert list(layout.instances(state, "p").iterdir()) == []
