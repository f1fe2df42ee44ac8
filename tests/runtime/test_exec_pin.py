"""`holosc exec` checks the instance's pinned host key (real ssh against a real sshd on
127.0.0.1 standing in for the guest's forwarded port)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from tests.conftest import REPO


def install(tmp_path: Path, sshd: Any, pinned_host_pub: Path) -> dict[str, str]:
    """A project 'demo' installed on this "host" as holosc up leaves it: the lock, the
    project key, and the known_hosts that holos-seed wrote at the instance's start."""
    config, state = tmp_path / "etc", tmp_path / "state"
    (config / "demo").mkdir(parents=True)
    lock = {"instances": {"web-0": {"ssh_port": sshd.port, "user": sshd.user, "ip": "10.10.0.2"}}}
    (config / "demo" / "holos.lock.json").write_text(json.dumps(lock))
    keydir = state / "ssh" / "demo"
    keydir.mkdir(parents=True)
    for name in ("id_ed25519", "id_ed25519.pub"):
        (keydir / name).write_bytes(
            (sshd.key.parent / name.replace("id_ed25519", "client_key")).read_bytes()
        )
    (keydir / "id_ed25519").chmod(0o600)
    inst = state / "instances" / "demo" / "web-0"
    inst.mkdir(parents=True)
    kind, blob = pinned_host_pub.read_text().split()[:2]
    (inst / "known_hosts").write_text(f"web-0.demo.holos {kind} {blob}\n")
    return dict(
        os.environ,
        HOLOSC_CONFIG_DIR=str(config),
        HOLOSC_STATE_DIR=str(state),
        HOLOSC_UNIT_DIR=str(tmp_path / "units"),
        # No service manager to ask whether web-0's unit runs (the sshd stands in for the
        # guest): exec then lets the SSH wait decide, whether or not this machine runs a
        # systemd of its own.
        HOLOSC_SYSTEMCTL="false",
        PYTHONPATH=str(REPO),
    )


def holosc_exec(env: dict[str, str], *command: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "holosc", "exec", "-p", "demo", "-w", "5", "web-0", "--", *command],
        env=env, capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL,
    )  # fmt: skip


def test_exec_runs_on_the_pinned_host(tmp_path: Path, sshd: Any) -> None:
    env = install(tmp_path, sshd, sshd.workdir / "host_key.pub")
    result = holosc_exec(env, "echo", "pinned")
    assert result.returncode == 0, result.stderr
    assert result.stdout == "pinned\n"


def test_exec_refuses_another_host_key_on_the_port(tmp_path: Path, sshd: Any) -> None:
    """The sshd on the port is not the instance whose key was pinned (a local process
    that took the port first): ssh refuses before authenticating or running anything."""
    other = tmp_path / "other_host_key"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(other)], check=True)
    env = install(tmp_path, sshd, tmp_path / "other_host_key.pub")
    marker = tmp_path / "ran"
    result = holosc_exec(env, "touch", str(marker))
    assert result.returncode == 255, result.stderr
    assert "Host key verification failed" in result.stderr, result.stderr
    assert not marker.exists()


def test_exec_without_a_pin_says_why(tmp_path: Path, sshd: Any) -> None:
    env = install(tmp_path, sshd, sshd.workdir / "host_key.pub")
    (tmp_path / "state" / "instances" / "demo" / "web-0" / "known_hosts").unlink()
    result = holosc_exec(env, "true")
    assert result.returncode != 0
    assert "web-0 has no pinned host key" in result.stderr, result.stderr
