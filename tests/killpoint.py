"""Run `holosc ARGS...` in a forked child and SIGKILL it just before its N-th change.

Every call that changes the file system (os.open for writing, write, rename, replace,
link, symlink, mkdir, rmdir, unlink, chmod, chown, and renameat2 through libc) counts
as one step. `run(0, ...)` kills nothing and returns how many steps the command took, so
a test can kill a real build before every step it takes. The child wraps the os module,
not holosc's code, so this works on any version of holosc; forking (rather than starting
Python again) makes one build a few milliseconds.
"""

from __future__ import annotations

import contextlib
import functools
import os
import shutil  # noqa: F401  (imported before os is wrapped: it checks os.supports_dir_fd)
import signal
import tempfile  # noqa: F401
from collections.abc import Callable
from pathlib import Path
from typing import Any

from holosc.cli import app  # imported once, before forking: each build then takes ms

STEPS = 0
MUTATING = (
    "write",
    "rename",
    "replace",
    "link",
    "symlink",
    "mkdir",
    "rmdir",
    "unlink",
    "remove",
    "chmod",
    "fchmod",
    "chown",
    "fchown",
    "truncate",
    "ftruncate",
)
WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_TRUNC


def _step(kill_at: int) -> None:
    global STEPS
    STEPS += 1
    if kill_at == STEPS:
        os.kill(os.getpid(), signal.SIGKILL)


def _wrap(func: Callable[..., Any], kill_at: int, *, flags_arg: int | None = None) -> Any:
    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        flags = args[flags_arg] if flags_arg is not None and len(args) > flags_arg else None
        if flags_arg is None or (flags is not None and flags & WRITE_FLAGS):
            _step(kill_at)
        return func(*args, **kwargs)

    return wrapper


def install(kill_at: int) -> None:
    for name in MUTATING:
        if hasattr(os, name):
            setattr(os, name, _wrap(getattr(os, name), kill_at))
    os.open = _wrap(os.open, kill_at, flags_arg=1)
    try:
        from holosc.emit import tree
    except ImportError:  # a holosc before tree.py: its renames go through os
        return
    tree.renameat2 = _wrap(tree.renameat2, kill_at)


def run(kill_at: int, args: list[str], cwd: Path, env: dict[str, str]) -> tuple[int, int]:
    """(wait status, steps taken) of `holosc ARGS` killed before step `kill_at` (0: never)."""
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: never returns into pytest
        code = 70
        try:
            os.close(read_end)
            os.chdir(cwd)
            os.environ.update(env)
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, 1)
            os.dup2(devnull, 2)
            install(kill_at)
            try:
                app(args, prog_name="holosc")
                code = 0
            except SystemExit as exc:
                code = exc.code if isinstance(exc.code, int) else 1
        finally:
            with contextlib.suppress(OSError):
                os.write(write_end, f"{STEPS}".encode())
            os._exit(code)
    os.close(write_end)
    with os.fdopen(read_end) as pipe:
        steps = pipe.read()
    _, status = os.waitpid(pid, 0)
    return status, int(steps or 0)
