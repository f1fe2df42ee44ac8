"""No value becomes an ssh option, and `holosc exec` keeps argv: a real sshd on 127.0.0.1.

ssh parses options that follow the destination unless `--` ended them, so a healthcheck
or exec word such as `-oProxyCommand=touch FILE` would run FILE's creation on the host.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

from tests.runtime.test_health import FAST, attempts, health

REPO = Path(__file__).resolve().parents[2]


def test_healthcheck_word_is_never_an_ssh_option(sshd: Any, tmp_path: Path) -> None:
    marker = tmp_path / "proxied"
    # The list form: ["CMD", "-oProxyCommand=touch", MARKER] ...
    rc, err, _ = health(sshd, *FAST, "--retries", "1", "--", "-oProxyCommand=touch", str(marker))
    assert not marker.exists(), "ssh ran a ProxyCommand from the healthcheck on the host"
    # ... reached the guest's shell as a command, which does not exist there.
    assert rc == 1 and attempts(err)[0].startswith("exit status 127"), err
    assert "-oProxyCommand=touch" in err and "not found" in err, err
    # One word with a space: quoted, so it is a (missing) command too.
    rc, err, _ = health(sshd, *FAST, "--retries", "1", "--", f"-oProxyCommand=touch {marker}")
    assert not marker.exists()
    assert rc == 1 and attempts(err)[0].startswith("exit status 127"), err


def test_health_refuses_a_user_or_host_that_is_an_option(sshd: Any, tmp_path: Path) -> None:
    marker = tmp_path / "proxied"
    for flag in ("--user", "--host"):
        argv = [*sshd.health_args(), flag, f"-oProxyCommand=touch {marker}", "--", "true"]
        proc = subprocess.run(
            [sys.executable, "-m", "holos_runtime.health", *argv],
            capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL,
        )  # fmt: skip
        assert proc.returncode == 2, proc.stderr
        assert not marker.exists()


def _installed(sshd: Any, tmp_path: Path) -> dict[str, str]:
    """An installed project `inj` whose instance web-0 is the test sshd."""
    config, state = tmp_path / "config", tmp_path / "state"
    if config.exists():
        return {
            "HOLOSC_CONFIG_DIR": str(config),
            "HOLOSC_STATE_DIR": str(state),
            "HOLOSC_UNIT_DIR": str(tmp_path / "units"),
            # No manager to ask whether web-0 runs (the sshd stands in for the guest), whether
            # or not this machine runs a systemd of its own: the SSH wait decides.
            "HOLOSC_SYSTEMCTL": "false",
        }
    (config / "inj").mkdir(parents=True)
    lock = {"instances": {"web-0": {"ssh_port": sshd.port, "user": sshd.user}}}
    (config / "inj" / "holos.lock.json").write_text(json.dumps(lock))
    key = state / "ssh" / "inj" / "id_ed25519"
    key.parent.mkdir(parents=True)
    shutil.copy(sshd.key, key)
    key.chmod(0o600)
    # The host key pin that holos-seed writes when the instance starts.
    pin = state / "instances" / "inj" / "web-0" / "known_hosts"
    pin.parent.mkdir(parents=True)
    kind, blob = (sshd.workdir / "host_key.pub").read_text().split()[:2]
    pin.write_text(f"web-0.inj.holos {kind} {blob}\n")
    return {
        "HOLOSC_CONFIG_DIR": str(config),
        "HOLOSC_STATE_DIR": str(state),
        "HOLOSC_UNIT_DIR": str(tmp_path / "units"),
        # No manager to ask whether web-0 runs (the sshd stands in for the guest), whether
        # or not this machine runs a systemd of its own: the SSH wait decides.
        "HOLOSC_SYSTEMCTL": "false",
    }


def exec_(sshd: Any, tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = os.environ | _installed(sshd, tmp_path)
    return subprocess.run(
        [sys.executable, "-m", "holosc", "exec", "-p", "inj", "--wait", "10", *args],
        capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL, env=env,
        cwd=REPO,
    )  # fmt: skip


def test_exec_keeps_argv(sshd: Any, tmp_path: Path) -> None:
    guest = tmp_path / "guest"
    guest.mkdir()
    result = exec_(sshd, tmp_path, "web-0", "--", "touch", f"{guest}/my file")
    assert result.returncode == 0, result.stderr
    assert [p.name for p in guest.iterdir()] == ["my file"]
    hostile = ["printf", "%s|", "a b", "'q'", '"d"', "$HOME", "`id`", "x;y", "*", ""]
    result = exec_(sshd, tmp_path, "web-0", "--", *hostile)
    assert result.returncode == 0, result.stderr
    assert result.stdout == "a b|'q'|\"d\"|$HOME|`id`|x;y|*||"


def test_exec_words_are_never_ssh_options(sshd: Any, tmp_path: Path) -> None:
    marker = tmp_path / "proxied"
    result = exec_(sshd, tmp_path, "web-0", "--", "-oProxyCommand=touch", str(marker))
    assert not marker.exists(), "ssh ran a ProxyCommand from exec's command on the host"
    assert result.returncode == 127, result.stderr  # the guest's shell: command not found
    result = exec_(sshd, tmp_path, "--login", f"-oProxyCommand=touch {marker}", "web-0", "true")
    assert not marker.exists()
    assert result.returncode == 5 and "is not a valid user name" in result.stderr
