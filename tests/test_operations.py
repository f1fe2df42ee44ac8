"""The pure parts of kill, port, ls and stats (no manager, no guest): signal names, the
port a guest port is published on, compose's status words, the stats arithmetic.
tests/test_lifecycle.py and tests/e2e/test_stack.py run the commands on real guests."""

from __future__ import annotations

import pytest

from holosc.core.lock import LockedInstance
from holosc.host import operations, stats


def test_signal_names() -> None:
    assert operations.signal_name("kill") == "SIGKILL"
    assert operations.signal_name("SIGTERM") == "SIGTERM"
    assert operations.signal_name("9") == "SIGKILL"
    for bad in ("NOPE", "-9", "--help", "SIGKILL; rm"):
        with pytest.raises(ValueError):
            operations.signal_name(bad)


def test_host_port() -> None:
    web = LockedInstance("web", "10.0.0.2", 44001, "holos", ("8081:80", "9000:22"))
    db = LockedInstance("db", "10.0.0.3", 44002, "holos", ())
    assert operations.host_port({"web-1": web}, 80) == 8081
    assert operations.host_port({"web-1": web}, 22) == 9000  # a published port first
    assert operations.host_port({"db-0": db}, 22) == 44002  # else the SSH forward
    assert operations.host_port({"db-0": db}, 80) is None
    assert operations.host_port({"web-1": web}, 80, "udp") is None


def test_status_words_follow_compose() -> None:
    assert operations._state_word("active/running") == "running"
    assert operations._state_word("active/paused") == "paused"
    assert operations._state_word("inactive/dead") == "exited"
    assert operations._state_word("failed/failed") == "failed"


def test_stats_rows() -> None:
    before = {"web-0": stats.Sample("web-0", 10.0, 1_000_000_000, 100, 200, 1, 2)}
    after = {
        "web-0": stats.Sample("web-0", 12.0, 2_000_000_000, 150, 200, 5, 6),
        "db-0": stats.Sample("db-0", 12.0, None, None, None, None, None),
    }
    rows = {r.name: r for r in stats.rows(before, after)}
    assert rows["web-0"].cpu_percent == pytest.approx(50.0)
    assert rows["web-0"].mem_percent == pytest.approx(75.0)
    assert (rows["web-0"].block_read, rows["web-0"].block_written) == (5, 6)
    assert rows["db-0"].cpu_percent is None and rows["db-0"].mem_percent is None
    assert stats.human(512 << 20) == "512.00MiB" and stats.human(999, binary=False) == "999B"
    assert stats.human(None) == "-" and stats.human(1_500_000, binary=False) == "1.50MB"
