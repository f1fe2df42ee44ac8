"""holos-health against a real sshd on 127.0.0.1 (no mocks)."""

from __future__ import annotations

import contextlib
import os
import re
import socket
import subprocess
import sys
import threading
import time
from typing import Any

FAST = ["--interval", "0.2", "--timeout", "10"]


def health(sshd: Any, *args: str, env: dict[str, str] | None = None) -> tuple[int, str, float]:
    """Run holos-health as the health unit does; return (exit code, stderr, seconds)."""
    start = time.monotonic()
    base = {k: v for k, v in os.environ.items() if k != "HOLOS_HEALTH_BYPASS"}
    proc = subprocess.run(
        [sys.executable, "-m", "holos_runtime.health", *sshd.health_args(), *args],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=120,
        env=base | (env or {}),
    )
    print(proc.stderr)
    return proc.returncode, proc.stderr, time.monotonic() - start


def attempts(stderr: str) -> list[str]:
    return re.findall(r"attempt \d+ at [\d.]+ s: (.*)", stderr)


def test_healthy_at_first_attempt(sshd: Any) -> None:
    rc, err, _ = health(sshd, "--instance", "db-0", *FAST, "--", "true")
    assert rc == 0, err
    assert attempts(err) == ["ok"]
    assert re.search(r"db-0: attempt 1 at \d+\.\d s: ok", err), err


def test_healthy_on_third_attempt(sshd: Any, tmp_path: Any) -> None:
    counter = tmp_path / "count"
    script = f"n=$(($(cat {counter} 2>/dev/null || echo 0) + 1)); echo $n > {counter}; [ $n -ge 3 ]"
    rc, err, _ = health(sshd, *FAST, "--retries", "3", "--", "sh", "-c", script)
    assert rc == 0, err
    assert [a.split(":")[0] for a in attempts(err)] == ["exit status 1", "exit status 1", "ok"]
    assert counter.read_text().strip() == "3"


def test_always_failing_stops_after_retries(sshd: Any) -> None:
    rc, err, _ = health(sshd, *FAST, "--retries", "4", "--", "false")
    assert rc == 1, err
    assert len(attempts(err)) == 4
    assert "unhealthy after 4 consecutive failures" in err


def test_start_period_failures_do_not_count(sshd: Any) -> None:
    # How many probes fit in the start period depends on the machine's speed (an ssh
    # handshake takes ~2 s on a loaded 2-core machine); the first always does. What must
    # hold at any speed: after the start period, exactly `retries` failures end the check.
    args = ["--interval", "0.5", "--timeout", "10", "--retries", "2", "--start-period", "6"]
    rc, err, elapsed = health(sshd, *args, "--", "false")
    assert rc == 1, err
    not_counted = err.count("(start period, not counted)")
    assert not_counted >= 1, err
    assert len(attempts(err)) == not_counted + 2
    assert elapsed >= 6


def test_hanging_probe_is_killed_at_timeout(sshd: Any) -> None:
    rc, err, elapsed = health(
        sshd, "--interval", "0", "--timeout", "2", "--retries", "2", "--", "sleep", "30"
    )
    assert rc == 1, err
    assert attempts(err) == ["timed out after 2s", "timed out after 2s"]
    assert elapsed < 30  # the probe was killed, not waited for (sleep 30, twice)


def test_refused_port_reports_connection_refused(sshd: Any) -> None:
    with socket.socket() as s:  # bound but never listening: connections are refused
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    args = [*sshd.health_args(), "--port", str(port)]  # the last --port wins
    proc = subprocess.run(
        [sys.executable, "-m", "holos_runtime.health", *args, *FAST, "--retries", "1", "--",
         "true"],
        stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert proc.returncode == 1, proc.stderr
    assert "connection refused" in proc.stderr


class Forward:
    """A port that behaves like QEMU's user-mode forward: it accepts every connection at
    once; until `open()` it closes it (the guest's sshd does not listen yet), afterwards it
    relays to `target`."""

    def __init__(self, target: int) -> None:
        self.target = target
        self.relaying = threading.Event()
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def open(self) -> None:
        self.relaying.set()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            if not self.relaying.is_set():
                client.close()
                continue
            server = socket.create_connection(("127.0.0.1", self.target))
            for a, b in ((client, server), (server, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(source: socket.socket, sink: socket.socket) -> None:
        with contextlib.suppress(OSError):
            while data := source.recv(65536):
                sink.sendall(data)
        with contextlib.suppress(OSError):
            sink.shutdown(socket.SHUT_WR)

    def close(self) -> None:
        self.listener.close()


def test_probes_as_soon_as_sshd_answers(sshd: Any) -> None:
    """While the forwarded port has no sshd behind it, the helper watches for its greeting
    instead of sleeping a whole interval: with an interval of an hour it is healthy soon
    after sshd appears (before the fix it slept the hour, and the 120 s bound failed)."""
    forward = Forward(sshd.port)
    args = [*sshd.health_args(), "--port", str(forward.port)]  # the last --port wins
    args += ["--interval", "3600", "--timeout", "10", "--start-period", "3600"]
    proc = subprocess.Popen(
        [sys.executable, "-m", "holos_runtime.health", *args, "--", "true"],
        stdin=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert proc.stderr is not None
        first = proc.stderr.readline()
        assert "attempt 1" in first and "not counted" in first, first
        forward.open()
        _, rest = proc.communicate(timeout=120)
        assert proc.returncode == 0, first + rest
        assert attempts(first + rest)[-1] == "ok", first + rest
    finally:
        proc.kill()
        forward.close()


def test_string_form_exit_code_is_reported(sshd: Any) -> None:
    rc, err, _ = health(sshd, *FAST, "--retries", "1", "--", "sh", "-c", "echo broken >&2; exit 3")
    assert rc == 1, err
    assert attempts(err) == ["exit status 3: broken"]


def test_arguments_are_shell_quoted(sshd: Any, tmp_path: Any) -> None:
    target = tmp_path / "a file; with $(metachars)"
    rc, err, _ = health(sshd, *FAST, "--retries", "1", "--", "touch", str(target))
    assert rc == 0, err
    assert target.exists()


def test_bypass_succeeds_without_ssh(sshd: Any) -> None:
    rc, err, _ = health(
        sshd, "--", "false", env={"HOLOS_HEALTH_BYPASS": "1", "PATH": "/nonexistent"}
    )
    assert rc == 0, err
    assert "HOLOS_HEALTH_BYPASS" in err


def test_missing_ssh_exits_127(sshd: Any) -> None:
    rc, err, _ = health(sshd, "--", "true", env={"PATH": "/nonexistent"})
    assert rc == 127, err
    assert "ssh not found" in err


def test_usage_errors_exit_2(sshd: Any) -> None:
    rc, err, _ = health(sshd, "--timeout", "0", "--", "true")
    assert rc == 2, err
    rc, err, _ = health(sshd)  # no TEST
    assert rc == 2, err


def test_other_host_key_on_the_port_is_refused(sshd: Any, tmp_path: Any) -> None:
    """A process that took the forwarded port (here: an sshd with another host key than
    the one pinned for the instance) cannot pass the probe, even though it would accept
    the project key and run the command."""
    impostor = tmp_path / "other_host_key"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(impostor)], check=True)
    kind, blob = (tmp_path / "other_host_key.pub").read_text().split()[:2]
    pinned = tmp_path / "known_hosts"
    pinned.write_text(f"db-0.test.holos {kind} {blob}\n")
    marker = tmp_path / "ran"
    proc = subprocess.run(
        [sys.executable, "-m", "holos_runtime.health", *sshd.health_args(pinned), *FAST,
         "--retries", "1", "--", "touch", str(marker)],
        stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert proc.returncode == 1, proc.stderr
    assert "not the pinned host key" in proc.stderr, proc.stderr
    assert not marker.exists(), "the command ran on a host whose key is not pinned"


def test_missing_pin_is_refused(sshd: Any, tmp_path: Any) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "holos_runtime.health", *sshd.health_args(tmp_path / "none"),
         *FAST, "--retries", "1", "--", "true"],
        stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert proc.returncode == 1, proc.stderr
    assert "not the pinned host key" in proc.stderr, proc.stderr


def test_pin_is_required(sshd: Any) -> None:
    args = ["--port", str(sshd.port), "--key", str(sshd.key), "--user", sshd.user]
    proc = subprocess.run(
        [sys.executable, "-m", "holos_runtime.health", *args, "--", "true"],
        stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert proc.returncode == 2, proc.stderr
    assert "--known-hosts" in proc.stderr
