"""Run a program and keep a bounded amount of its output: the start of stdout (what
callers parse), the end of stderr (where the reason is), the rest read and dropped so
the program never blocks on a full pipe.

The programs holosc and the helpers run often relay what another party writes: ssh
carries a guest's output (a healthcheck, the peer update), virsh a domain's XML. Held
whole (subprocess.run's capture_output), a guest printing in a loop would take all the
memory of holosc or of a health probe before the timeout. Standard library only.
"""

from __future__ import annotations

import os
import selectors
import subprocess
import time
from collections.abc import Sequence

LIMIT = 16 << 20  # bytes kept of each stream
_CHUNK = 64 << 10


def run(
    argv: Sequence[str],
    *,
    input: bytes | None = None,  # the program's stdin (subprocess's name); else closed
    timeout: float | None = None,
    limit: int = LIMIT,
) -> subprocess.CompletedProcess[bytes]:
    """Run `argv` (no shell) to its end; stdout and stderr each cut to `limit` bytes.

    :raises subprocess.TimeoutExpired: after `timeout` seconds (the program is killed
        and reaped first).
    :raises OSError: when it cannot be started (FileNotFoundError when missing).
    """
    deadline = None if timeout is None else time.monotonic() + timeout
    stdin = subprocess.PIPE if input else subprocess.DEVNULL
    with subprocess.Popen(
        list(argv), stdin=stdin, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    ) as proc:
        try:
            out, err = _collect(proc, input or b"", deadline, limit)
            proc.wait(None if deadline is None else max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            raise subprocess.TimeoutExpired(list(argv), timeout or 0.0) from None
    return subprocess.CompletedProcess(list(argv), proc.returncode, out, err)


def _collect(
    proc: subprocess.Popen[bytes], data: bytes, deadline: float | None, limit: int
) -> tuple[bytes, bytes]:
    assert proc.stdout is not None and proc.stderr is not None
    out, err = bytearray(), bytearray()
    with selectors.DefaultSelector() as sel:
        sel.register(proc.stdout, selectors.EVENT_READ, out)
        sel.register(proc.stderr, selectors.EVENT_READ, err)
        if proc.stdin is not None:
            os.set_blocking(proc.stdin.fileno(), False)
            sel.register(proc.stdin, selectors.EVENT_WRITE, None)
        while sel.get_map():
            wait = None if deadline is None else deadline - time.monotonic()
            if wait is not None and wait <= 0:
                raise subprocess.TimeoutExpired(proc.args, 0)
            for key, _ in sel.select(wait):
                if key.data is None:  # stdin: as much as the pipe takes
                    data = _feed(proc, sel, data)
                    continue
                chunk = os.read(key.fd, _CHUNK)
                if not chunk:
                    sel.unregister(key.fileobj)
                elif key.data is out:
                    out += chunk[: max(0, limit - len(out))]
                else:
                    err += chunk
                    del err[: max(0, len(err) - limit)]
    return bytes(out), bytes(err)


def _feed(proc: subprocess.Popen[bytes], sel: selectors.BaseSelector, data: bytes) -> bytes:
    assert proc.stdin is not None
    try:
        data = data[os.write(proc.stdin.fileno(), data[:_CHUNK]) :]
    except BrokenPipeError:
        data = b""
    if not data:
        sel.unregister(proc.stdin)
        proc.stdin.close()
    return data
