"""The host's disk as the compiler's file reader (holosc.core.files.Files)."""

from __future__ import annotations

import stat
from pathlib import Path

from holosc.core.files import Kind
from holosc.load.confine import Confinement
from holosc.load.regular import read_regular


class HostFiles:
    """The files a project refers to (Dockerfiles, COPY sources, images), read on demand.

    Validation receives this object instead of touching the disk itself, so the
    compiler core stays pure and tests can substitute a dictionary-backed reader. With a
    Confinement, it reads only inside the directories it allows (commands always pass
    one; holosc.load.confine).
    """

    def __init__(self, confinement: Confinement | None = None) -> None:
        self.confinement = confinement

    def read_bytes(self, path: Path) -> bytes:
        """:raises OSError: OutsideProject when the confinement refuses `path`."""
        if self.confinement is not None:
            self.confinement.check(path)
        return read_regular(path)

    def realpath(self, path: Path) -> Path:
        return path.resolve()

    def kind(self, path: Path) -> Kind:
        """ "file", "dir", "missing" or "other" (a FIFO, device or socket, or what this
        user may not look at). A name no file can have (too long, a symlink loop) is
        missing: Path.is_dir() raises for those."""
        try:
            mode = path.stat().st_mode
        except PermissionError:
            return "other"
        except OSError:
            return "missing"
        if stat.S_ISDIR(mode):
            return "dir"
        return "file" if stat.S_ISREG(mode) else "other"
