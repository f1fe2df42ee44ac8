"""One command at a time changes a project: an flock on `%t/holos/.<project>.lock`.

up, down, start, stop, install and uninstall hold it for their whole run; a second one
waits and says which command holds it. The lock file stays (removing it would let two
commands lock two different files); it holds the holder's command and PID.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Callable, Iterator

from holosc.core import layout
from holosc.errors import Diagnostic, RuntimeCommandError
from holosc.host.systemd import Manager


@contextlib.contextmanager
def project_lock(
    manager: Manager, project: str, command: str, say: Callable[[str], None]
) -> Iterator[None]:
    path = layout.project_lock(manager.runtime_dir, project)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    except OSError as exc:
        message = f"cannot open the project lock {path}: {exc.strerror}"
        raise RuntimeCommandError(message, [Diagnostic(message, file="holosc")]) from exc
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 200, 0).decode(errors="replace").strip() or "another holosc"
            say(f"{project}: waiting for {holder} to finish (lock {path})")
            fcntl.flock(fd, fcntl.LOCK_EX)
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"holosc {command} (pid {os.getpid()})\n".encode(), 0)
        yield
    finally:
        os.close(fd)  # releases the lock
