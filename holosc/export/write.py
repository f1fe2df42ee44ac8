"""Write exported manifests into a directory: each file atomically, unchanged files left
alone, and files the previous export listed in its lock (and this one does not) removed.
Files holosc never wrote are never touched."""

from __future__ import annotations

import json
from pathlib import Path, PurePosixPath

from holosc.core.compiler import Output
from holosc.emit.write import Changes, write_atomic
from holosc.errors import Diagnostic, EmitError


def write_dir(output: Output, root: Path, lock_file: str) -> Changes:
    try:
        previous = json.loads((root / lock_file).read_text("utf-8")).get("files", {})
    except (OSError, ValueError, AttributeError):
        previous = {}
    wanted = {str(p) for p in output.files}
    stale = sorted(
        p
        for p in previous
        if PurePosixPath(p).name == p and p not in wanted and (root / p).is_file()
    )
    written, unchanged = [], 0
    try:
        for path, file in output.files.items():
            target = root / path
            if target.is_file() and not target.is_symlink() and target.read_bytes() == file.data:
                unchanged += 1
                continue
            if str(path) != lock_file:
                write_atomic(target, file.data, file.mode)
                written.append(str(path))
        for rel in stale:
            (root / rel).unlink(missing_ok=True)
        lock = output.files[PurePosixPath(lock_file)]
        if str(lock_file) not in [str(p) for p in output.files] or not (
            (root / lock_file).is_file() and (root / lock_file).read_bytes() == lock.data
        ):
            write_atomic(root / lock_file, lock.data, lock.mode)  # last: it names the rest
            written.append(lock_file)
    except OSError as exc:
        raise EmitError(
            f"cannot write {root}",
            [Diagnostic(f"cannot write the output directory: {exc}", file=str(root))],
        ) from exc
    return Changes(tuple(written), tuple(stale), unchanged)
