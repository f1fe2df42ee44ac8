"""Secrets that come from holosc's environment (`secrets: {x: {environment: VAR}}`):
`holosc up` writes each value to the project's runtime directory, where the launch
script hands it to QEMU. That directory is a tmpfs (%t), mode 0700, so the value never
reaches a disk and is gone at reboot (`holosc up` writes it again); file secrets need
nothing here: QEMU reads the user's file itself.
"""

from __future__ import annotations

import contextlib
import os
import stat
from collections.abc import Mapping
from pathlib import Path

from holosc.core import layout
from holosc.core.model import Project
from holosc.errors import Diagnostic, RuntimeCommandError


def secrets_dir(runtime_root: Path, project: str) -> Path:
    return layout.secrets(runtime_root, project)


def write_environment_secrets(
    project: Project, runtime_root: Path, environ: Mapping[str, str]
) -> list[str]:
    """Write every environment secret the project uses; return their names.

    :raises RuntimeCommandError: when a variable is unset or the directory is not ours.
    """
    wanted = [s for s in project.secrets if s.environment is not None]
    missing = [s for s in wanted if s.environment not in environ]
    if missing:
        message = ", ".join(f"secret {s.name} needs ${s.environment}" for s in missing)
        raise RuntimeCommandError(
            message,
            [Diagnostic(message, file="holosc", hint="set it in the environment of holosc up")],
        )
    if not wanted:
        return []
    directory = _private_dir(secrets_dir(runtime_root, project.name))
    for secret in wanted:
        _write(directory, secret.name, environ[str(secret.environment)].encode())
    return [s.name for s in wanted]


def _private_dir(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with contextlib.suppress(FileExistsError):
        path.mkdir(mode=0o700)
    info = os.lstat(path)
    if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.getuid():
        message = f"{path} is not a directory of this user"
        raise RuntimeCommandError(message, [Diagnostic(message, file="holosc")])
    os.chmod(path, 0o700)
    return path


def _write(directory: Path, name: str, data: bytes) -> None:
    tmp = directory / f".{name}.tmp"
    tmp.unlink(missing_ok=True)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    with os.fdopen(fd, "wb") as out:
        out.write(data)
    os.replace(tmp, directory / name)


def remove_environment_secrets(runtime_root: Path, project: str) -> None:
    """What `holosc up` wrote for the project, at `down`."""
    directory = secrets_dir(runtime_root, project)
    if not directory.is_dir() or directory.is_symlink():
        return
    for entry in directory.iterdir():
        if entry.is_file() and not entry.is_symlink():
            entry.unlink()
    with contextlib.suppress(OSError):
        directory.rmdir()
