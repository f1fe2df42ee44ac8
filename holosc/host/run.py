"""The one way holosc runs a program and waits for it: argv lists only (no shell), stdin
closed, output captured (at most 16 MiB of each stream: ssh relays what a guest
writes; holos_runtime.bounded), a timeout unless the program bounds itself, and one way
of turning failure into an error.

`os.execvp` (ssh for exec, journalctl for logs) is the other way, in holosc.cli.common;
`streaming` runs a program whose stdin or stdout the caller pumps (ssh for `cp`).
"""

from __future__ import annotations

import contextlib
import dataclasses
import shlex  # only to show a command in a message (escape.py would import yaml)
import subprocess
import tempfile
from collections.abc import Iterator, Sequence
from typing import IO, Any

from holos_runtime import bounded

from holosc.errors import Diagnostic, RuntimeCommandError

TIMEOUT = 60.0  # seconds; callers that wait on purpose (qemu-img, virsh) pass their own


def run(
    argv: Sequence[str],
    *,
    check: bool = True,
    timeout: float | None = TIMEOUT,
    hint: str | None = None,
    input: str | None = None,  # the program's stdin (subprocess's name)
) -> subprocess.CompletedProcess[str]:
    """Run `argv` and return its result (stdin: `input`, else closed). `timeout=None` is
    only for `systemctl start` and `stop`, which wait for jobs that systemd bounds itself
    (TimeoutStartSec=, TimeoutStopSec=).

    :raises RuntimeCommandError: when the program is missing (with `hint`, e.g. the package
        to install), does not finish within `timeout`, or, with `check`, exits non-zero
        (its last line of stderr in the message).
    """
    assert argv and all(isinstance(a, str) for a in argv) and not argv[0].startswith("-")
    try:
        done = bounded.run(argv, input=None if input is None else input.encode(), timeout=timeout)
    except FileNotFoundError as exc:
        raise error(f"{argv[0]} not found", hint) from exc
    except OSError as exc:
        raise error(f"cannot run {argv[0]}: {exc.strerror}", hint) from exc
    except subprocess.TimeoutExpired as exc:
        raise error(f"{shlex.join(argv)} timed out after {exc.timeout:g} s") from exc
    result = subprocess.CompletedProcess(
        done.args, done.returncode, _text(done.stdout), _text(done.stderr)
    )
    if check and result.returncode != 0:
        raise error(failure(argv, result))
    return result


def _text(data: bytes) -> str:
    """As subprocess's text mode reads it: UTF-8 (errors replaced), universal newlines."""
    return data.decode(errors="replace").replace("\r\n", "\n").replace("\r", "\n")


def output(argv: Sequence[str], *, timeout: float = TIMEOUT) -> str:
    """stdout of `argv`, or "" when it cannot run: for what only adds detail to a message
    (a journal tail, who holds a port)."""
    try:
        return run(argv, check=False, timeout=timeout).stdout
    except RuntimeCommandError:
        return ""


def failure(argv: Sequence[str], result: subprocess.CompletedProcess[str]) -> str:
    detail = (result.stderr or result.stdout).strip().splitlines()
    return f"{shlex.join(argv)} failed (exit {result.returncode})" + (
        f": {detail[-1]}" if detail else ""
    )


def interactive(argv: Sequence[str], *, hint: str | None = None) -> int:
    """Run `argv` on this terminal (stdin, stdout and stderr inherited) and return its exit
    status: ssh for `holosc run`, which must clean up after it (exec replaces holosc
    instead). No timeout: the user is driving it; ssh's ServerAliveInterval bounds a dead
    guest.

    :raises RuntimeCommandError: when the program is missing (with `hint`) or cannot run.
    """
    assert argv and not argv[0].startswith("-")
    try:
        return subprocess.run(list(argv), check=False).returncode
    except FileNotFoundError as exc:
        raise error(f"{argv[0]} not found", hint) from exc
    except OSError as exc:
        raise error(f"cannot run {argv[0]}: {exc.strerror}", hint) from exc


@dataclasses.dataclass(frozen=True)
class Stream:
    """A program started by `streaming`, its stderr kept in a file."""

    proc: subprocess.Popen[bytes]
    stderr: IO[bytes]

    def finish(self, what: str, timeout: float = TIMEOUT) -> None:
        """Wait for the program once its stream has ended.

        :raises RuntimeCommandError: when it exits non-zero (its last stderr in the
            message) or does not exit within `timeout`.
        """
        try:
            code = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired as exc:
            self.proc.kill()
            raise error(f"{what}: {self.proc.args!r} did not exit in {timeout:g} s") from exc
        if code != 0:
            self.stderr.seek(0)
            detail = _text(self.stderr.read()[-2000:]).strip()
            raise error(f"{what} failed (exit {code})" + (f": {detail}" if detail else ""))


@contextlib.contextmanager
def streaming(argv: Sequence[str], *, hint: str | None = None, **pipes: Any) -> Iterator[Stream]:
    """A program whose stdin or stdout (`pipes`: stdin=PIPE, stdout=PIPE) the caller pumps;
    its stderr goes to a temporary file (no pipe to fill while the caller is busy), read by
    Stream.finish. Bounding the stream is the caller's (ssh: ServerAliveInterval); the
    program is killed when the block is left before it exits.

    :raises RuntimeCommandError: when the program is missing (with `hint`) or cannot run.
    """
    assert argv and not argv[0].startswith("-") and set(pipes) <= {"stdin", "stdout"}
    with tempfile.TemporaryFile() as stderr:
        try:
            proc = subprocess.Popen(list(argv), stderr=stderr, **pipes)
        except FileNotFoundError as exc:
            raise error(f"{argv[0]} not found", hint) from exc
        except OSError as exc:
            raise error(f"cannot run {argv[0]}: {exc.strerror}", hint) from exc
        try:
            yield Stream(proc, stderr)
        finally:
            if proc.poll() is None:
                proc.kill()
            proc.wait()


def error(message: str, hint: str | None = None) -> RuntimeCommandError:
    return RuntimeCommandError(message, [Diagnostic(message, file="holosc", hint=hint)])
