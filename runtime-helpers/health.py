"""holos-health: run a compose-style health check inside a guest over SSH.

Usage::

    holos-health --port PORT --key KEYFILE --user USER --known-hosts FILE
                 --host-key-alias ALIAS [--host 127.0.0.1] [--instance NAME]
                 [--interval S] [--timeout S] [--retries N] [--start-period S]
                 -- TEST ARGV...

TEST ARGV is the exec form of the compose ``test`` (the compiler turns the string form
into ``sh -c "..."``).  It is shell-quoted word by word and sent as the remote
command of the system ``ssh`` client, after ``--`` and the destination: ssh parses
options that follow the destination unless ``--`` ended them, so a test word such as
``-oProxyCommand=...`` would otherwise run on the host.  ``--user`` and ``--host`` are
refused when they could be read as an option or a second destination.  Durations are
seconds (float); the defaults are compose's: interval 30, timeout 30, retries 3,
start-period 0.

Semantics (compose/docker, with one deliberate difference):

* the first probe runs at once (docker waits one interval first; a health gate that
  holds back dependent units should not);
* ``--interval`` is the sleep between the end of one probe and the start of the next,
  as docker's "interval seconds after each previous check completes"; there is no
  sleep after the last failing probe;
* until the guest's sshd has greeted once, the helper looks for its greeting before a
  probe (QEMU's port forward accepts a connection and closes it while the guest's sshd
  does not listen) and, if it was silent, every 0.25 s of the following interval,
  probing as soon as it answers: a booting guest is probed when it can take a login,
  not up to one interval later;
* ``--timeout`` bounds each probe: TCP connect, SSH handshake and command together
  (the ssh process is killed when it expires);
* a probe that *starts* within ``--start-period`` does not count as a failure;
* the first success exits 0; ``--retries`` consecutive counted failures exit 1 with
  the last failure reason.  ``--retries 0`` means the default 3, as in docker.

So the helper ends within ``start_period + retries * (timeout + interval)`` plus one
probe; the unit's ``TimeoutStartSec=`` should allow that.

``HOLOS_HEALTH_BYPASS`` set to any non-empty value succeeds at once without ssh.

The guest's host key is pinned: ssh runs with ``StrictHostKeyChecking=yes`` against
``--known-hosts`` (written by holos-seed when the instance started, the key it gave the
guest) under ``HostKeyAlias=--host-key-alias``, and no other known_hosts file.  A process
that took the forwarded port first cannot pass for the guest (see
docs/runtime-helpers.md).

Exit codes:

    0    healthy
    1    unhealthy (retries exhausted)
    2    usage error
    127  ssh not found

One log line per attempt on stderr (the journal).  Imports only the standard library;
never the compiler.
"""

from __future__ import annotations

import argparse
import logging
import math
import os
import re
import shlex
import shutil
import socket
import subprocess
import time
from collections.abc import Sequence

from holos_runtime import bounded
from holos_runtime.optstrings import ssh_path

log = logging.getLogger("holos-health")

EXIT_HEALTHY = 0
EXIT_UNHEALTHY = 1
EXIT_USAGE = 2
EXIT_NOT_FOUND = 127

DEFAULT_RETRIES = 3
SSHD_POLL = 0.25  # seconds between looks for the guest's sshd greeting

# What may stand in ssh's destination: nothing that starts with "-" or holds "@", ":" or
# whitespace (no option, no second user, no ssh:// URL); IPv6 addresses are bare.
_USER = re.compile(r"[a-z_][a-z0-9_-]{0,31}")
_HOST = re.compile(r"[A-Za-z0-9][A-Za-z0-9.-]{0,252}|[0-9A-Fa-f]*:[0-9A-Fa-f:.]*")


class ProbeResult:
    """Outcome of one probe: ``ok`` plus a human-readable reason when it failed.

    A plain class: ``dataclasses`` costs ~8 ms of import time on every probe start.
    """

    __slots__ = ("ok", "reason")

    def __init__(self, ok: bool, reason: str = "") -> None:
        self.ok = ok
        self.reason = reason


def last_line(text: str) -> str:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[-1] if lines else ""


def run(argv: Sequence[str], *, timeout: float) -> ProbeResult:
    """Run ARGV (no shell, stdin closed), killing it after TIMEOUT seconds."""
    try:
        # The guest writes what ssh relays: keep 64 KiB of it, whatever it writes.
        proc = bounded.run(argv, timeout=timeout, limit=64 << 10)
    except subprocess.TimeoutExpired:
        # bounded.run() kills and reaps the child before re-raising.
        return ProbeResult(False, f"timed out after {timeout:g}s")
    except FileNotFoundError:
        return ProbeResult(False, f"{argv[0]}: not found (exit 127)")
    if proc.returncode == 0:
        return ProbeResult(True)
    stderr = last_line(proc.stderr.decode(errors="replace"))
    if proc.returncode < 0:
        reason = f"killed by signal {-proc.returncode}"
    elif proc.returncode == 255 and "connection refused" in stderr.lower():
        # ssh itself exits 255 on its own errors; a refused forward means no guest sshd yet.
        reason = "connection refused"
    elif proc.returncode == 255 and "host key verification failed" in stderr.lower():
        reason = "not the pinned host key of this instance (impostor on the port?)"
    else:
        reason = f"exit status {proc.returncode}"
    log.debug("failed: %s", shlex.join(argv))
    return ProbeResult(False, f"{reason}: {stderr}" if stderr else reason)


def sshd_answers(host: str, port: int, timeout: float) -> bool:
    """Whether an SSH server greets on host:port. QEMU's port forward accepts every
    connection at once, also before the guest's sshd listens, and then closes it."""
    try:
        with socket.create_connection((host, port), timeout=timeout) as sock:
            greeting = b""
            while len(greeting) < 4 and (data := sock.recv(4 - len(greeting))):
                greeting += data
            return greeting == b"SSH-"
    except OSError:
        return False


def pause(args: argparse.Namespace, sshd_silent: bool) -> None:
    """The interval before the next probe; when sshd was silent at the last probe, cut
    short as soon as it answers."""
    until = time.monotonic() + args.interval
    while (left := until - time.monotonic()) > 0:
        time.sleep(min(SSHD_POLL, left) if sshd_silent else left)
        if sshd_silent and sshd_answers(args.host, args.port, min(1.0, max(left, SSHD_POLL))):
            return


def pinned_host_key(known_hosts: str, alias: str) -> list[str]:
    """ssh options that accept only the key pinned for `alias` in `known_hosts`.

    `holosc exec` passes the same (holosc.host.keys.pinned_host_key calls this).

    :raises ValueError: for a path ssh's option cannot carry (a line break).
    """
    return [
        "-o", "StrictHostKeyChecking=yes",
        "-o", f"UserKnownHostsFile={ssh_path(known_hosts)}",
        "-o", "GlobalKnownHostsFile=/dev/null",
        "-o", f"HostKeyAlias={alias}",
    ]  # fmt: skip


def ssh_argv(ssh: str, args: argparse.Namespace) -> list[str]:
    # ssh's ConnectTimeout takes whole seconds; the subprocess timeout is the real bound.
    connect_timeout = max(1, math.ceil(args.timeout))
    return [
        ssh,
        "-i", args.key,
        "-p", str(args.port),
        "-o", "BatchMode=yes",
        *pinned_host_key(args.known_hosts, args.host_key_alias),
        "-o", "LogLevel=ERROR",
        "-o", f"ConnectTimeout={connect_timeout}",
        "-o", "IdentitiesOnly=yes",
        "--",  # ends ssh's options: neither the destination nor the test is one
        f"{args.user}@{args.host}",
        remote_command(args.test),
    ]  # fmt: skip


def remote_command(argv: Sequence[str]) -> str:
    """ARGV as the command line the guest's shell runs (`sh -c LINE`): each word quoted,
    and a first word starting with "-" quoted too, or `sh -c -x` reads it as an option.
    The same rule as holosc.core.render.escape.shell_command (helpers never import holosc)."""
    first = shlex.quote(argv[0])
    if first.startswith("-"):
        first = f"'{first}'"
    return " ".join([first, *map(shlex.quote, argv[1:])])


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="holos-health",
        description="Compose-style health check of a guest over SSH.",
        epilog="exit codes: 0 healthy, 1 unhealthy, 2 usage, 127 ssh not found",
    )
    parser.add_argument("--port", type=int, required=True, help="forwarded SSH port")
    parser.add_argument("--key", required=True, help="private key file")
    parser.add_argument("--user", required=True, help="guest user")
    parser.add_argument(
        "--known-hosts", required=True, help="known_hosts file with the pinned host key"
    )
    parser.add_argument("--host-key-alias", required=True, help="the pin's name in that file")
    parser.add_argument("--host", default="127.0.0.1", help="SSH host (127.0.0.1)")
    parser.add_argument("--instance", help="name used in log lines")
    parser.add_argument("--interval", type=float, default=30.0, help="seconds (30)")
    parser.add_argument("--timeout", type=float, default=30.0, help="seconds per probe (30)")
    parser.add_argument("--retries", type=int, default=DEFAULT_RETRIES, help="(3)")
    parser.add_argument("--start-period", type=float, default=0.0, help="seconds (0)")
    parser.add_argument("test", nargs="+", metavar="TEST", help="test argv, after --")
    args = parser.parse_args(argv)
    if not 0 < args.port < 65536:
        parser.error("--port must be 1..65535")
    if args.interval < 0 or args.start_period < 0 or args.retries < 0:
        parser.error("--interval, --start-period and --retries must be >= 0")
    if args.timeout <= 0:
        parser.error("--timeout must be > 0")
    if not _USER.fullmatch(args.user):
        parser.error("--user must be a POSIX user name")
    if not _HOST.fullmatch(args.host):
        parser.error("--host must be an IP address or a host name")
    if args.retries == 0:
        args.retries = DEFAULT_RETRIES
    return args


def check(argv: Sequence[str], args: argparse.Namespace, name: str) -> int:
    """Probe until healthy or until RETRIES counted failures; return the exit code."""
    start = time.monotonic()
    failures = 0
    attempt = 0
    sshd_seen = False  # once sshd has greeted, it is not looked for again
    while True:
        attempt += 1
        sshd_silent = not sshd_seen and not sshd_answers(args.host, args.port, 1.0)
        sshd_seen = not sshd_silent
        probe_start = time.monotonic() - start
        result = run(argv, timeout=args.timeout)
        elapsed = time.monotonic() - start
        if result.ok:
            log.info("%s: attempt %d at %.1f s: ok", name, attempt, elapsed)
            return EXIT_HEALTHY
        counted = probe_start >= args.start_period
        failures += counted
        log.info(
            "%s: attempt %d at %.1f s: %s%s",
            name,
            attempt,
            elapsed,
            result.reason,
            "" if counted else " (start period, not counted)",
        )
        if failures >= args.retries:
            log.error(
                "%s: unhealthy after %d consecutive failures (%.1f s): %s",
                name,
                failures,
                elapsed,
                result.reason,
            )
            return EXIT_UNHEALTHY
        pause(args, sshd_silent)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``holos-health``; returns the exit code."""
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        args = parse_args(argv)
    except SystemExit as exc:  # argparse exits 2 on usage errors, 0 on --help
        return exc.code if isinstance(exc.code, int) else EXIT_USAGE
    name = args.instance or f"{args.host}:{args.port}"
    if os.environ.get("HOLOS_HEALTH_BYPASS"):
        log.info("%s: HOLOS_HEALTH_BYPASS is set, reporting healthy without ssh", name)
        return EXIT_HEALTHY
    ssh = shutil.which("ssh")
    if ssh is None:
        log.error("%s: ssh not found in PATH", name)
        return EXIT_NOT_FOUND
    return check(ssh_argv(ssh, args), args, name)


if __name__ == "__main__":
    raise SystemExit(main())
