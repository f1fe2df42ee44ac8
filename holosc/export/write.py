"""Write exported manifests into a directory: each file atomically, unchanged files left
alone, and files the previous export wrote (and this one does not) removed.

The directory and its lock are not trusted (people commit them): a stale entry is removed
only when it is a regular file (lstat: never through a symlink) whose bytes are what the
lock says the exporter wrote, and a manifest is replaced by a rename, never written
through a symlink. Files holosc never wrote are never touched."""

from __future__ import annotations

import hashlib
import os
import re
from pathlib import Path, PurePosixPath

from holosc.core import jsontext
from holosc.core.compiler import Output
from holosc.emit import safedir, tree
from holosc.emit.write import Changes, write_atomic
from holosc.errors import Diagnostic, EmitError


def write_dir(output: Output, root: Path, lock_file: str) -> Changes:
    """:raises EmitError: when `root` (or a directory above it) is another user's or
    writable by others (safedir.py), or cannot be written."""
    safedir.check_dir(root, create=True)
    previous = _previous_lock(root / lock_file)
    wanted = {str(p) for p in output.files}
    stale = sorted(
        p
        for p, digest in previous.items()
        if _MANIFEST.fullmatch(p) and p not in wanted and _holds(root / p, digest)
    )
    written, unchanged = [], 0
    try:
        for path, file in output.files.items():
            target = root / path
            if _regular_bytes(target) == file.data:
                unchanged += 1
                continue
            if str(path) != lock_file:
                write_atomic(target, file.data, file.mode)
                written.append(str(path))
        for rel in stale:
            (root / rel).unlink(missing_ok=True)
        lock = output.files[PurePosixPath(lock_file)]
        if _regular_bytes(root / lock_file) != lock.data:
            write_atomic(root / lock_file, lock.data, lock.mode)  # last: it names the rest
            written.append(lock_file)
    except OSError as exc:
        raise EmitError(
            f"cannot write {root}",
            [Diagnostic(f"cannot write the output directory: {exc}", file=str(root))],
        ) from exc
    return Changes(tuple(written), tuple(stale), unchanged)


# What an exporter names its manifests (kubevirt.Manifest.file_name): a lock naming
# anything else (a path, `..`, a NUL) names no file holosc wrote.
_MANIFEST = re.compile(r"[0-9]+-[a-z0-9][a-z0-9.-]*\.yaml")


def _previous_lock(path: Path) -> dict[str, str]:
    """{file: sha256} of the previous export; {} when absent or not one."""
    try:
        files = jsontext.loads(_regular_bytes(path) or b"{}").get("files", {})
    except (ValueError, AttributeError):
        return {}
    if not isinstance(files, dict):
        return {}
    return {p: d for p, d in files.items() if isinstance(p, str) and isinstance(d, str)}


def _regular_bytes(path: Path) -> bytes | None:
    """The bytes of `path` when it is a regular file (not followed if a symlink) of at
    most what holosc writes (a larger one is someone else's: not read whole)."""
    try:
        parent = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        return tree.read_file(path.name, parent)
    except OSError:
        return None
    finally:
        os.close(parent)


def _holds(path: Path, digest: str) -> bool:
    data = _regular_bytes(path)
    return data is not None and hashlib.sha256(data).hexdigest() == digest
