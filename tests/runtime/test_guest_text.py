"""What a guest says reaches the user's terminal escaped: the peer-update warning of
`holosc up` quotes the guest's stderr (a real sshd on 127.0.0.1 stands in for the guest;
a forced command in its authorized_keys plays a guest that answers with escapes)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

from holosc.core.layout import peers_name
from tests.conftest import REPO
from tests.runtime.test_exec_pin import install

HOSTILE = r"printf 'denied\033]0;owned\007\033[2J\302\233\342\200\256\n' >&2; exit 1"

# `up` after a scale: the guests that kept running get the new peer list through
# peers.update, which reports through cli.lifecycle.say like every line of `up`.
UP = """
import sys
from holosc.cli import lifecycle, streams
from holosc.host import peers, systemd
streams.install()
peers.update(systemd.manager(), "demo", ["web-0"], ["default"], lifecycle.say)
"""


def test_the_peer_update_warning_quotes_the_guest_escaped(tmp_path: Path, sshd: Any) -> None:
    env = install(tmp_path, sshd, sshd.workdir / "host_key.pub")
    key = tmp_path / "guest_key"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", key], check=True)
    with (sshd.workdir / "authorized_keys").open("a") as keys:
        keys.write(f'command="{HOSTILE}" {(key.with_suffix(".pub")).read_text()}')
    project_key = tmp_path / "state" / "ssh" / "demo" / "id_ed25519"
    project_key.write_bytes(key.read_bytes())
    project_key.with_suffix(".pub").write_bytes(key.with_suffix(".pub").read_bytes())
    (tmp_path / "etc" / "demo" / peers_name("default")).write_text("10.10.0.2 web-0\n")
    done = subprocess.run(
        [sys.executable, "-c", UP],
        env=dict(env, PYTHONPATH=str(REPO)),
        capture_output=True,
        timeout=120,
        cwd=tmp_path,
    )
    err = done.stderr.decode()
    assert done.returncode == 0, err
    assert err == (
        "holosc: warning: web-0: peer names not updated "
        "(denied\\x1b]0;owned\\x07\\x1b[2J\\x9b\\u202e); it gets them at its next start\n"
    )
