"""Full filesystems: say which one is full, how much is free and how much is needed.

A full state or configuration filesystem is an everyday event on small hosts, not a bug:
it ends a command with exit 5 and one clear line, never a traceback.
"""

from __future__ import annotations

import errno
import os
from collections.abc import Iterable
from pathlib import Path

from holosc.errors import Diagnostic, RuntimeCommandError

FULL_ERRNOS = (errno.ENOSPC, errno.EDQUOT)


def is_full(exc: OSError) -> bool:
    return exc.errno in FULL_ERRNOS


def _existing(path: Path) -> Path:
    path = path.absolute()
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def free_bytes(path: Path) -> int:
    """Bytes an unprivileged writer can still use on the filesystem holding `path`."""
    st = os.statvfs(_existing(path))
    return st.f_bavail * st.f_frsize


def mount_point(path: Path) -> Path:
    """The mount point of the filesystem holding `path`."""
    path = _existing(path).resolve()
    dev = path.stat().st_dev
    while path != path.parent and path.parent.stat().st_dev == dev:
        path = path.parent
    return path


def human(size: int) -> str:
    value = float(size)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    raise AssertionError("unreachable")


def full_error(path: Path, what: str, needed: int | None) -> RuntimeCommandError:
    free = free_bytes(path)
    message = f"no space left on {mount_point(path)} for {what} ({path}): {human(free)} free" + (
        f", about {human(needed)} needed" if needed is not None else ""
    )
    hint = "free space on that filesystem, then run the command again"
    return RuntimeCommandError(message, [Diagnostic(message, file="holosc", hint=hint)])


def allocated(path: Path) -> int:
    try:
        return path.stat().st_blocks * 512
    except OSError:
        return 0


def oversubscribed(root: Path, declared: Iterable[tuple[str, Path, int]]) -> str | None:
    """A warning when declared disks and volumes (name, file, size) can grow beyond the
    free space of `root`: qcow2 files grow as guests write, and a guest whose disk hits a
    full host filesystem is paused by QEMU with an I/O error."""
    items = [(name, size) for name, path, size in declared if size > allocated(path)]
    total = sum(size for _, size in items)
    free = free_bytes(root)
    if total <= free:
        return None
    listed = ", ".join(f"{name} {human(size)}" for name, size in items)
    return (
        f"declared disk and volume sizes ({human(total)}: {listed}) exceed the free space "
        f"on {mount_point(root)} ({human(free)}); a guest that fills its disk is paused "
        "by QEMU (io-error, shown by holosc ps)"
    )
