"""holos-qmp-stop: stop one QEMU guest over QMP, soft first, then hard.

Usage::

    holos-qmp-stop --qmp SOCKET [--pid PID] [--grace SECONDS] [--instance NAME]

The generated unit runs it as ``ExecStop=-holos-qmp-stop ...``.  ``--pid`` defaults
to ``$MAINPID`` (systemd sets it in ``ExecStop=`` and leaves it unset once the main
process has exited); without either, the QMP connection alone tells when QEMU is gone
(EOF on the socket).

Steps, one log line each on stderr (the journal):

1. nothing to stop if the PID is dead or the socket is missing/refused;
2. connect (short timeout, retried briefly while the socket appears);
3. ``query-status``: a guest that is not running (paused, ``-S``, io-error...) cannot
   act on the power button, so go straight to step 6.  We deliberately do *not*
   ``cont`` it: a VM someone paused (snapshot, debugging, I/O error) should not run
   guest code again just because it is being stopped;
4. ``system_powerdown``;
5. wait up to ``--grace`` seconds for QEMU to exit (PID gone or EOF on the socket),
   pressing the button again after 2, 4, then every 5 seconds (a booting guest misses a press);
6. ``quit`` and wait a few seconds for the PID to vanish.

Every QMP await has a timeout, so a hung QEMU ends in exit code 4 within about
``grace + 12`` seconds and systemd's SIGTERM/SIGKILL (``TimeoutStopSec=``) takes over.

Exit codes:

    0  the guest shut down gracefully
    1  stopped by the ``quit`` fallback (guest ignored the power button or was paused)
    2  usage error
    3  nothing to stop (QEMU already gone, socket missing)
    4  error: could not stop QEMU; systemd's kill is the last resort

This module imports only the standard library and (lazily) ``qemu.qmp``; it must never
import the compiler, so that a broken compiler cannot break ``ExecStop=``.
"""

from __future__ import annotations

import argparse
import logging
import os
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from qemu.qmp import QMPClient

log = logging.getLogger("holos-qmp-stop")

EXIT_GRACEFUL = 0
EXIT_QUIT = 1
EXIT_USAGE = 2
EXIT_NOTHING = 3
EXIT_ERROR = 4

# Budget: connect + powerdown + grace + quit + QUIT_WAIT stays under grace + 12 s, so
# the compiler's TimeoutStopSec (grace + 15 s) kills only a QEMU we could not stop.
CONNECT_TIMEOUT = 3.0
CONNECT_RETRY_WINDOW = 2.0
COMMAND_TIMEOUT = 3.0
QUIT_WAIT = 5.0
RESEND_FIRST = 2.0
RESEND_MAX = 5.0
POLL = 0.1


class StopError(Exception):
    """QEMU could not be stopped over QMP (exit code 4)."""


class NothingToStop(Exception):
    """QEMU is already gone (exit code 3)."""


def pid_alive(pid: int) -> bool:
    """True if PID exists and is not a zombie (a zombie QEMU has already exited)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            # Field 3 follows the ")" that closes the command name, which may contain spaces.
            state = f.read().rsplit(b")", 1)[1].split()[0]
    except (OSError, IndexError):
        return True
    return state not in (b"Z", b"X")


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="holos-qmp-stop",
        description="Stop a QEMU guest over QMP: system_powerdown, wait, then quit.",
        epilog="exit codes: 0 graceful, 1 quit fallback, 2 usage, 3 nothing to stop, 4 error",
    )
    parser.add_argument("--qmp", required=True, metavar="SOCKET", help="QMP unix socket")
    parser.add_argument("--pid", type=int, help="QEMU PID (default: $MAINPID)")
    parser.add_argument(
        "--grace", type=float, default=30.0, help="seconds to wait after powerdown (30)"
    )
    parser.add_argument("--instance", help="name used in log lines (default: the socket)")
    args = parser.parse_args(argv)
    if args.grace < 0:
        parser.error("--grace must be >= 0")
    if args.pid is None:
        mainpid = os.environ.get("MAINPID", "").strip()
        if mainpid:
            try:
                args.pid = int(mainpid)
            except ValueError:
                parser.error(f"$MAINPID is not a PID: {mainpid!r}")
    if args.pid is not None and args.pid <= 0:
        parser.error("--pid must be positive")
    return args


def reachable(socket: str) -> str:
    """A path to `socket` that fits a Unix socket address (107 bytes): relative to its own
    directory, which becomes this process's working directory when the path is long."""
    if len(os.fsencode(socket)) <= 100:
        return socket
    os.chdir(os.path.dirname(socket))
    return os.path.basename(socket)


class Stopper:
    """One stop attempt: owns the QMP client, the PID and the log prefix."""

    def __init__(self, socket: str, pid: int | None, grace: float, name: str) -> None:
        self.socket = socket
        self.pid = pid
        self.grace = grace
        self.name = name
        self.client: QMPClient | None = None
        self.quit_sent = False
        self.shutdown_seen = False

    def gone(self) -> bool:
        """QEMU has exited: its PID vanished, or (PID unknown) the socket hit EOF."""
        from qemu.qmp import Runstate

        if self.pid is not None and not pid_alive(self.pid):
            return True
        assert self.client is not None
        return self.pid is None and self.client.runstate != Runstate.RUNNING

    async def connect(self) -> None:
        import asyncio

        from qemu.qmp import ConnectError, QMPClient

        deadline = time.monotonic() + CONNECT_RETRY_WINDOW
        while True:
            self.client = QMPClient(self.name)
            try:
                await asyncio.wait_for(self.client.connect(self.socket), CONNECT_TIMEOUT)
                return
            except TimeoutError as exc:
                raise StopError(f"no QMP greeting within {CONNECT_TIMEOUT} s (hung?)") from exc
            except ConnectError as exc:
                cause = exc.exc
                if not isinstance(cause, (FileNotFoundError, ConnectionRefusedError)):
                    raise StopError(f"cannot connect to {self.socket}: {cause}") from exc
                if self.pid is None or not pid_alive(self.pid):
                    raise NothingToStop(f"socket {type(cause).__name__}") from exc
                if time.monotonic() >= deadline:
                    raise StopError(f"QEMU alive but {self.socket}: {cause}") from exc
            await asyncio.sleep(0.2)

    async def execute(self, cmd: str) -> Any:
        import asyncio

        from qemu.qmp import ExecInterruptedError, QMPError

        assert self.client is not None
        try:
            return await asyncio.wait_for(self.client.execute(cmd), COMMAND_TIMEOUT)
        except TimeoutError as exc:
            raise StopError(f"{cmd}: no answer within {COMMAND_TIMEOUT} s") from exc
        except (EOFError, ConnectionError, ExecInterruptedError) as exc:
            if cmd == "quit" or self.shutdown_seen:
                # QEMU may close the socket before answering the command that ends it.
                return None
            raise StopError(f"{cmd}: QMP connection lost unexpectedly: {exc!r}") from exc
        except QMPError as exc:
            raise StopError(f"{cmd}: {exc}") from exc

    async def wait_gone(self, seconds: float) -> bool:
        """Poll for QEMU's exit for up to SECONDS; log the SHUTDOWN event when it comes."""
        import asyncio

        assert self.client is not None
        deadline = time.monotonic() + seconds
        with self.client.listener(("SHUTDOWN",)) as listener:
            while True:
                while not listener.empty():
                    event = await listener.get()
                    self.shutdown_seen = True
                    log.info("%s: SHUTDOWN event %s", self.name, event.get("data", {}))
                if self.gone():
                    return True
                if time.monotonic() >= deadline:
                    return False
                await asyncio.sleep(POLL)

    async def wait_powerdown(self, sent: float) -> bool:
        """Wait up to the grace period for QEMU to exit, pressing the button again after
        RESEND_FIRST s, twice that, then every RESEND_MAX s: a guest still booting misses
        a press (its ACPI button driver is not listening yet) and would sit out the grace."""
        deadline = sent + self.grace
        interval = RESEND_FIRST
        while True:
            step = min(interval, deadline - time.monotonic())
            if await self.wait_gone(max(step, 0.0)):
                return True
            if time.monotonic() >= deadline:
                return False
            if not self.shutdown_seen:
                await self.execute("system_powerdown")
                log.info("%s: powerdown sent again (%.1f s)", self.name, time.monotonic() - sent)
            interval = min(interval * 2, RESEND_MAX)

    async def hard_stop(self, start: float) -> int:
        self.quit_sent = True
        await self.execute("quit")
        log.info("%s: quit sent", self.name)
        if await self.wait_gone(QUIT_WAIT):
            log.info(
                "%s: QEMU gone after quit, %.1f s in total", self.name, time.monotonic() - start
            )
            return EXIT_QUIT
        raise StopError(f"QEMU still running {QUIT_WAIT} s after quit")

    async def stop(self) -> int:
        start = time.monotonic()
        await self.connect()
        log.info("%s: connected to %s (%.2f s)", self.name, self.socket, time.monotonic() - start)
        status = await self.execute("query-status")
        if status.get("status") != "running":
            log.warning(
                "%s: guest is %s, it cannot act on the power button; sending quit",
                self.name,
                status.get("status"),
            )
            return await self.hard_stop(start)
        await self.execute("system_powerdown")
        sent = time.monotonic()
        log.info("%s: powerdown sent", self.name)
        if await self.wait_powerdown(sent):
            log.info("%s: guest shut down after %.1f s", self.name, time.monotonic() - sent)
            return EXIT_GRACEFUL
        log.warning("%s: no shutdown after %.1f s, sending quit", self.name, self.grace)
        return await self.hard_stop(start)

    async def close(self) -> None:
        import asyncio

        from qemu.qmp import QMPError

        if self.client is None:
            return
        try:
            await asyncio.wait_for(self.client.disconnect(), COMMAND_TIMEOUT)
        except (EOFError, ConnectionError, QMPError) as exc:
            # qemu.qmp re-raises the reader's EOFError here once QEMU has exited.
            if not (self.quit_sent or self.shutdown_seen or self.gone()):
                log.warning("%s: unexpected error on disconnect: %r", self.name, exc)
        except TimeoutError:
            log.warning("%s: disconnect timed out", self.name)

    async def run(self) -> int:
        try:
            return await self.stop()
        finally:
            await self.close()


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``holos-qmp-stop``; returns the exit code."""
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        args = parse_args(argv)
    except SystemExit as exc:  # argparse exits 2 on usage errors, 0 on --help
        return exc.code if isinstance(exc.code, int) else EXIT_USAGE
    name = args.instance or args.qmp
    if args.pid is not None and not pid_alive(args.pid):
        log.info("%s: nothing to stop (PID %s gone)", name, args.pid)
        return EXIT_NOTHING
    if args.pid is None and not os.path.exists(args.qmp):
        log.info("%s: nothing to stop (socket missing)", name)
        return EXIT_NOTHING

    import asyncio

    # qemu.qmp logs every reader EOF as an error; those are expected here and reported by us.
    logging.getLogger("qemu.qmp").setLevel(logging.CRITICAL)
    stopper = Stopper(reachable(args.qmp), args.pid, args.grace, name)
    try:
        return asyncio.run(stopper.run())
    except NothingToStop as exc:
        log.info("%s: nothing to stop (%s)", name, exc)
        return EXIT_NOTHING
    except StopError as exc:
        log.error("%s: could not stop: %s; leaving it to systemd's kill", name, exc)
        return EXIT_ERROR


if __name__ == "__main__":
    raise SystemExit(main())
