"""Write a compiled Output into a directory: atomically, minimally, and reversibly.

- Every new or changed file is first staged as a temporary file beside its target; only
  when all are staged are they renamed into place. A failure while staging removes the
  temporaries and leaves the previous output byte-identical.
- Unchanged files are not rewritten (their mtime stays).
- Files that the previous build wrote (listed in its holos.lock.json) and this one does
  not are removed; files holosc never wrote are never touched.
"""

from __future__ import annotations

import dataclasses
import difflib
import json
import os
import tempfile
from pathlib import Path, PurePosixPath

from holosc.compiler import LOCK_FILE, File, Output
from holosc.errors import Diagnostic, EmitError


@dataclasses.dataclass(frozen=True)
class Changes:
    written: tuple[str, ...]
    removed: tuple[str, ...]
    unchanged: int

    @property
    def any(self) -> bool:
        return bool(self.written or self.removed)


def previous_files(root: Path, lock_file: str = LOCK_FILE) -> set[str]:
    """Paths the previous build recorded in its lock file."""
    try:
        lock = json.loads((root / lock_file).read_text("utf-8"))
        return {p for p in lock.get("files", {}) if _is_safe(p)} | {lock_file}
    except (OSError, ValueError, AttributeError):
        return set()


def _is_safe(path: str) -> bool:
    p = PurePosixPath(path)
    return not p.is_absolute() and ".." not in p.parts and bool(p.parts)


def plan_changes(output: Output, root: Path, lock_file: str = LOCK_FILE) -> Changes:
    written, unchanged = [], 0
    for path, file in output.files.items():
        if _matches(root / path, file):
            unchanged += 1
        else:
            written.append(str(path))
    wanted = {str(p) for p in output.files}
    removed = sorted(p for p in previous_files(root, lock_file) - wanted if (root / p).is_file())
    return Changes(tuple(written), tuple(removed), unchanged)


def _matches(target: Path, file: File) -> bool:
    try:
        st = target.lstat()
        return (
            not target.is_symlink()
            and (st.st_mode & 0o777) == file.mode
            and target.read_bytes() == file.data
        )
    except OSError:
        return False


def write_atomic(target: Path, data: bytes, mode: int = 0o644) -> None:
    """Replace `target` with `data` in one rename (readers see old or new, never half)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.chmod(tmp, mode)
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def emit(output: Output, root: Path, lock_file: str = LOCK_FILE) -> Changes:
    """Make `root` hold exactly `output` (plus files holosc did not write); `lock_file`
    names the file of `output` that lists what it holds.

    :raises EmitError: when the directory cannot be written; nothing changed then.
    """
    changes = plan_changes(output, root, lock_file)
    staged: list[tuple[Path, Path]] = []
    try:
        for rel in changes.written:
            file = output.files[PurePosixPath(rel)]
            target = root / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
            with os.fdopen(fd, "wb") as handle:
                handle.write(file.data)
            os.chmod(tmp, file.mode)
            staged.append((Path(tmp), target))
    except OSError as exc:
        for staged_file, _ in staged:
            staged_file.unlink(missing_ok=True)
        raise EmitError(
            f"cannot write {root}",
            [Diagnostic(f"cannot write the output directory: {exc}", file=str(root))],
        ) from exc
    # The lock file goes last: it names what the directory now holds.
    staged.sort(key=lambda pair: pair[1].name == lock_file)
    try:
        for staged_file, target in staged:
            os.replace(staged_file, target)
        for rel in changes.removed:
            (root / rel).unlink(missing_ok=True)
            _prune(root, (root / rel).parent)
    except OSError as exc:
        raise EmitError(
            f"cannot update {root}",
            [Diagnostic(f"cannot update the output directory: {exc}", file=str(root))],
        ) from exc
    return changes


def _prune(root: Path, directory: Path) -> None:
    while directory != root and root in directory.parents:
        try:
            directory.rmdir()
        except OSError:
            return
        directory = directory.parent


def diff(output: Output, root: Path) -> str:
    """A unified diff from the directory's contents to what `emit` would write."""
    changes = plan_changes(output, root)
    chunks: list[str] = []
    for rel in [*changes.written, *changes.removed]:
        old_path = root / rel
        old = old_path.read_bytes() if old_path.is_file() else b""
        new_file = output.files.get(PurePosixPath(rel))
        new = new_file.data if new_file else b""
        try:
            a, b = old.decode("utf-8"), new.decode("utf-8")
        except UnicodeDecodeError:
            chunks.append(f"Binary files a/{rel} and b/{rel} differ\n")
            continue
        body = "".join(
            difflib.unified_diff(
                a.splitlines(keepends=True),
                b.splitlines(keepends=True),
                fromfile=f"a/{rel}" if old_path.is_file() else "/dev/null",
                tofile=f"b/{rel}" if new_file else "/dev/null",
            )
        )
        if not body and new_file and old_path.is_file():
            body = f"mode of {rel} changes to {new_file.mode:o}\n"
        chunks.append(body)
    return "".join(chunks)
