"""The files a project names (Dockerfiles, COPY sources, env files), as an explicit input.

The compiler never touches the disk: validation reads through a `Files` it is given.
holosc.load.files.HostFiles reads the host's disk; tests may pass a dictionary-backed one.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal, Protocol

Kind = Literal["file", "dir", "missing", "other"]  # other: a FIFO, device or socket


class Files(Protocol):
    def read_bytes(self, path: Path) -> bytes: ...

    def realpath(self, path: Path) -> Path: ...

    def kind(self, path: Path) -> Kind: ...
