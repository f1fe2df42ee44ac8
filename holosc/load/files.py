"""The host's disk as the compiler's file reader (holosc.core.files.Files)."""

from __future__ import annotations

from pathlib import Path

from holosc.core.files import Kind
from holosc.load.parse import MAX_FILE_BYTES


class HostFiles:
    """The files a project refers to (Dockerfiles, COPY sources, images), read on demand.

    Validation receives this object instead of touching the disk itself, so the
    compiler core stays pure and tests can substitute a dictionary-backed reader.
    """

    def read_bytes(self, path: Path) -> bytes:
        if path.stat().st_size > MAX_FILE_BYTES:
            raise OSError(f"{path.name} is larger than {MAX_FILE_BYTES} bytes")
        return path.read_bytes()

    def realpath(self, path: Path) -> Path:
        return path.resolve()

    def kind(self, path: Path) -> Kind:
        """ "file", "dir" or "missing"."""
        if path.is_dir():
            return "dir"
        return "file" if path.exists() else "missing"
