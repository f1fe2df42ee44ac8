"""Names handed to systemctl and journalctl never become options (real tools, offline:
`systemctl --root` reads unit files from a directory, `journalctl --directory` a journal
directory, so no running systemd is needed)."""

from __future__ import annotations

import subprocess
from pathlib import Path

from holosc.host import systemd
from tests.conftest import require_tool


def _manager(tmp_path: Path) -> systemd.Manager:
    ctl = require_tool("systemctl")
    journal = require_tool("journalctl")
    env = {
        "HOLOSC_SYSTEMCTL": f"{ctl} --root={tmp_path}",
        "HOLOSC_JOURNALCTL": f"{journal} --directory={tmp_path}",
    }
    return systemd.manager("system", env)


def test_systemctl_units_follow_a_double_dash(tmp_path: Path) -> None:
    result = _manager(tmp_path).ctl("is-enabled", units=["-oops.service"], check=False)
    # Parsed as a unit (not found), not as the option "-o ops.service".
    assert "Unknown output" not in result.stderr
    assert "-oops.service" in result.stderr, result.stderr


def test_journalctl_units_are_one_word_each(tmp_path: Path) -> None:
    argv = _manager(tmp_path).journal(["-fake.service", "b.service"], lines=1)
    assert "--unit=-fake.service" in argv and "--unit=b.service" in argv
    result = subprocess.run(argv, capture_output=True, text=True, timeout=30)
    assert result.returncode == 0, result.stderr  # no option error: an empty journal
