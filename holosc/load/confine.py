"""Which files a project may read into what holosc compiles: those in its directory.

`env_file`, `include` and `extends: {file:}` name files whose content holosc compiles
into the output (user-data, units, the lock), and compose lets them name any path after
interpolation: `env_file: ${HOME}/.aws/credentials` in a repository that CI builds puts
the CI's credentials into the user-data it publishes. holosc reads such a file only when
its real path (symlinks resolved) is inside the project directory (where the main
holos.yaml is), or inside a directory the user allows in HOLOSC_ALLOW_PATHS (directories
separated by ':', like PATH). That variable is read from holosc's own environment only,
never from a `.env` file, which is part of the project. Anything else is an error at the
entry's position that says how to allow it.

The Dockerfile and its COPY sources are stricter: inside the project directory only
(holosc.core.validate).
"""

from __future__ import annotations

import dataclasses
import errno
import os
from collections.abc import Mapping
from pathlib import Path

ALLOW = "HOLOSC_ALLOW_PATHS"


class OutsideProject(PermissionError):
    """A file outside the allowed directories; an OSError, so every reader reports it as
    it reports a file it cannot read, at the entry's position."""


@dataclasses.dataclass(frozen=True)
class Confinement:
    """The directories a project's files may be read from (real paths)."""

    project: Path
    allowed: tuple[Path, ...] = ()

    @classmethod
    def of(cls, project_dir: Path, environ: Mapping[str, str] = os.environ) -> Confinement:
        extra = [p for p in environ.get(ALLOW, "").split(":") if p]
        return cls(project_dir.resolve(), tuple(Path(p).resolve() for p in extra))

    def check(self, path: Path) -> None:
        """:raises OutsideProject: when `path`, symlinks resolved, is in none of them."""
        real = path.resolve()
        if any(real == root or root in real.parents for root in (self.project, *self.allowed)):
            return
        raise OutsideProject(
            errno.EACCES,
            f"{real} is outside the project directory {self.project}; what it holds would "
            f"be compiled into the output (to read it anyway: {ALLOW}={real.parent})",
        )
