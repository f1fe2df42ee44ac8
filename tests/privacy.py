"""What "the manager's alone" means for a directory tree, as tests measure it."""

from __future__ import annotations

import stat
from pathlib import Path


def not_private(root: Path) -> dict[str, str]:
    """{path below root: mode} of every directory that is not 0700 and every file that
    others (group or world) may read, write or run; symlinks are not followed."""
    loose = {}
    for path in [root, *root.rglob("*")]:
        st = path.lstat()
        mode = stat.S_IMODE(st.st_mode)
        if stat.S_ISLNK(st.st_mode):
            continue
        if (mode != 0o700) if stat.S_ISDIR(st.st_mode) else bool(mode & 0o077):
            loose[str(path.relative_to(root.parent))] = oct(mode)
    return loose
