"""Fixtures for the runtime-helper tests: a real sshd on 127.0.0.1 and tiny QEMU guests.

Nothing is mocked.  A missing tool fails the test with the package to install
(tests.conftest.require_tool): nothing is skipped, locally or in CI.

The guest is the Debian cloud kernel plus a busybox initramfs built here.  The kernel
comes from ``apt-get download`` (cached under ``$HOLOSC_TEST_CACHE`` or
``~/.cache/holosc-test``) because the test machines have no kernel in /boot.  The kernel
has the ACPI button driver as a module, so the "honours ACPI" guest loads ``button.ko``
and ``evdev.ko``, blocks on the "Power Button" input device and runs ``poweroff -f``.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import require_tool
from tests.guestkernel import READY_MARK


def run(argv: list[str], **kwargs: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, check=True, text=True, capture_output=True, **kwargs)  # type: ignore[call-overload, no-any-return]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# --- sshd ----------------------------------------------------------------------------


def wait_listening(proc: subprocess.Popen[Any], port: int, log: Callable[[], str]) -> None:
    """Wait until `proc` accepts connections on 127.0.0.1:`port`, or fail with its log."""
    deadline = time.monotonic() + 10
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"{proc.args!r} did not start listening: {log()}")
            time.sleep(0.05)


ALIAS = "db-0.test.holos"


@dataclass(frozen=True)
class Sshd:
    port: int
    key: Path
    user: str
    workdir: Path

    @property
    def known_hosts(self) -> Path:
        """This sshd's host key pinned under ALIAS, as holos-seed writes it."""
        return self.workdir / "known_hosts"

    def health_args(self, known_hosts: Path | None = None) -> list[str]:
        pin = ["--known-hosts", str(known_hosts or self.known_hosts), "--host-key-alias", ALIAS]
        return ["--port", str(self.port), "--key", str(self.key), "--user", self.user, *pin]


@pytest.fixture(scope="session")
def sshd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sshd]:
    sshd_bin = require_tool("sshd")
    keygen = require_tool("ssh-keygen")
    require_tool("ssh")
    d = tmp_path_factory.mktemp("sshd")
    os.chmod(d, 0o700)
    run([keygen, "-q", "-t", "ed25519", "-N", "", "-f", str(d / "host_key")])
    run([keygen, "-q", "-t", "ed25519", "-N", "", "-f", str(d / "client_key")])
    shutil.copy(d / "client_key.pub", d / "authorized_keys")
    kind, blob = (d / "host_key.pub").read_text().split()[:2]
    (d / "known_hosts").write_text(f"{ALIAS} {kind} {blob}\n")
    port = free_port()
    (d / "sshd_config").write_text(
        f"Port {port}\nListenAddress 127.0.0.1\nHostKey {d}/host_key\n"
        f"AuthorizedKeysFile {d}/authorized_keys\nPidFile {d}/sshd.pid\n"
        "StrictModes no\nUsePAM no\nPasswordAuthentication no\n"
        "KbdInteractiveAuthentication no\nPermitRootLogin prohibit-password\n"
    )
    # sshd refuses to start without its privilege-separation directory.
    if os.geteuid() == 0:
        os.makedirs("/run/sshd", exist_ok=True)
    log = open(d / "sshd.log", "w")  # noqa: SIM115
    proc = subprocess.Popen(
        [sshd_bin, "-D", "-e", "-f", str(d / "sshd_config")],
        stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    try:
        wait_listening(proc, port, lambda: (d / "sshd.log").read_text())
        import getpass

        yield Sshd(port, d / "client_key", getpass.getuser(), d)
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        log.close()


# --- tiny QEMU guests ----------------------------------------------------------------


@dataclass
class Guest:
    proc: subprocess.Popen[bytes]
    qmp: Path
    serial: Path

    def wait_ready(self, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while not self.serial.exists() or READY_MARK not in self.serial.read_text(errors="replace"):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"guest not ready: {self.serial.read_text(errors='replace')}")
            time.sleep(0.1)

    def wait_qmp(self, timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        while not self.qmp.exists():
            assert time.monotonic() < deadline, "QMP socket never appeared"
            time.sleep(0.05)


@pytest.fixture
def start_guest(guest_kernel: Path, initramfs: dict[str, Path], tmp_path: Path) -> Iterator[object]:
    """Factory: start_guest(kind, *extra_qemu_args) -> Guest; kills leftovers on teardown."""
    qemu = require_tool("qemu-system-x86_64")
    guests: list[Guest] = []

    def start(kind: str, *extra: str) -> Guest:
        # Short directory: qemu.qmp connects only to socket paths of at most 107 bytes.
        sock_dir = Path(tempfile.mkdtemp(prefix="hq", dir="/tmp"))
        serial = tmp_path / f"serial-{len(guests)}.log"
        argv = [
            qemu, "-accel", "tcg", "-m", "256", "-display", "none", "-nodefaults",
            "-serial", f"file:{serial}",
            "-kernel", str(guest_kernel / "vmlinuz"),
            "-initrd", str(initramfs[kind]),
            "-append", "console=ttyS0 quiet panic=-1",
            "-qmp", f"unix:{sock_dir / 'qmp.sock'},server=on,wait=off",
            *extra,
        ]  # fmt: skip
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL)
        guest = Guest(proc, sock_dir / "qmp.sock", serial)
        guests.append(guest)
        guest.wait_qmp()
        return guest

    yield start
    for guest in guests:
        if guest.proc.poll() is None:
            os.kill(guest.proc.pid, signal.SIGKILL)  # also ends a SIGSTOPped QEMU
        guest.proc.wait(timeout=10)
        shutil.rmtree(guest.qmp.parent, ignore_errors=True)
