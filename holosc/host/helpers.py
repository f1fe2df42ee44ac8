"""Where this host's runtime helpers are, and how the units find them without root.

Units name the helpers (holos-seed, holos-qmp-stop, ...) by bare command name, which
systemd looks up in its fixed search path (/usr/local/bin, /usr/bin, ...). A holosc
installed into a virtualenv, with `pip install --user` or with pipx has them elsewhere.
So `install` and `up` write one drop-in into the manager's unit directory, for the
project's units only (`holos-<p>-.service.d/`, systemd.unit(5)'s dash prefix):

    [Service]
    ExecSearchPath=<the helpers' directory>:<systemd's own path>

It belongs to this host (a path of this installation), so it is never part of the
compiled output: the output stays the same bytes everywhere. `ExecSearchPath=` exists
since systemd 250 (Debian 12 has 252) and also becomes the processes' $PATH, so the
launch script finds holos-image and QEMU the same way.

The system manager runs the helpers as root: there the drop-in is written only when the
helpers' directory and files are root's and writable by nobody else.
"""

from __future__ import annotations

import contextlib
import functools
import os
import stat
from importlib import metadata
from pathlib import Path

from holosc.core import layout
from holosc.emit.write import write_atomic
from holosc.host.systemd import Manager

# systemd.exec(5), "Command lines": a bare Exec*= name is searched only here.
SYSTEMD_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
# The runtime helpers (pyproject.toml's entry points but holosc itself).
HELPERS = (
    "holos-qmp-stop",
    "holos-health",
    "holos-seed",
    "holos-image",
    "holos-bake",
    "holos-console-log",
    "holos-switch",
)
DROP_IN = "50-holos-helpers.conf"


@functools.cache
def installed_dir() -> Path | None:
    """The directory holding this holosc installation's helpers (a venv's bin, ~/.local/bin,
    pipx's venv), from the installation's own record; None when it has none (run from a
    source tree) or lacks one of them."""
    # A source tree's holosc.egg-info (no record of scripts) may come first on sys.path.
    for dist in metadata.distributions(name="holosc"):
        files = dist.files or []
        found = {f.name: Path(os.path.normpath(f.locate())) for f in files if f.name in HELPERS}
        dirs = {p.parent for p in found.values()}
        if len(found) == len(HELPERS) and len(dirs) == 1:
            directory = dirs.pop()
            if all((directory / h).is_file() for h in HELPERS):
                return directory
    return None


def systemd_finds(helper: str) -> Path | None:
    """Where systemd's own search path finds `helper`, if anywhere."""
    for entry in SYSTEMD_PATH.split(":"):
        path = Path(entry) / helper
        if path.is_file() and os.access(path, os.X_OK):
            return path
    return None


def trusted_by_root(directory: Path) -> bool:
    """Root's, from / down to each helper, and writable by nobody else."""
    paths = [*reversed(directory.parents), directory, *(directory / h for h in HELPERS)]
    for path in paths:
        try:
            info = path.lstat()
            if stat.S_ISLNK(info.st_mode):
                info = path.stat()
        except OSError:
            return False
        if info.st_uid != 0 or info.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
            sticky = stat.S_ISDIR(info.st_mode) and info.st_mode & stat.S_ISVTX
            if info.st_uid != 0 or not sticky:
                return False
    return True


def usable_dir(manager: Manager) -> Path | None:
    """This installation's helper directory if the units may be pointed at it."""
    directory = installed_dir()
    if directory is None:
        return None
    try:
        drop_in_text(directory)
    except ValueError:  # a path ExecSearchPath= cannot carry
        return None
    if manager.scope == "system" and not trusted_by_root(directory):
        return None
    return directory


def drop_in_path(manager: Manager, project: str) -> Path:
    return manager.unit_dir / layout.helpers_drop_in_dir(project) / DROP_IN


def drop_in_text(directory: Path) -> str:
    # Imported here: the unit escaping module loads yaml, which `ps` (through install)
    # must not pay for (tests/test_cli_imports.py).
    from holosc.core.render.escape import unit_search_path

    return (
        "# Written by holosc: this host's runtime helpers, where this holosc is installed.\n"
        "[Service]\n"
        f"ExecSearchPath={unit_search_path([str(directory), *SYSTEMD_PATH.split(':')])}\n"
    )


def write_drop_in(manager: Manager, project: str) -> bool:
    """Point the project's units at this installation's helpers; remove a stale pointer
    when there is none to give. Returns whether the unit directory changed."""
    path = drop_in_path(manager, project)
    directory = usable_dir(manager)
    if directory is None:
        return remove_drop_in(manager, project)
    text = drop_in_text(directory)
    try:
        if path.read_text("utf-8") == text:
            return False
    except (OSError, UnicodeDecodeError):
        pass
    path.parent.mkdir(mode=0o755, exist_ok=True)
    write_atomic(path, text.encode())
    return True


def remove_drop_in(manager: Manager, project: str) -> bool:
    path = drop_in_path(manager, project)
    if not path.exists():
        return False
    path.unlink()
    with contextlib.suppress(OSError):  # someone's own drop-in lives there too
        path.parent.rmdir()
    return True


def missing(manager: Manager) -> list[str]:
    """The helpers the units could not run: neither in systemd's search path nor in a
    directory the drop-in may name."""
    if usable_dir(manager) is not None:
        return []
    return [h for h in HELPERS if systemd_finds(h) is None]
