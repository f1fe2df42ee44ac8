"""Write a compiled Output into a directory: all at once, and only what holosc owns.

- All or nothing, for a kill -9 at any instant: the new output is built in a sibling
  staging directory `.<name>.holosc-new-<pid>-<token>`, which also keeps every other
  entry of the old directory (hard links: same inodes, bytes and mtimes), and is swapped
  in with one renameat2(RENAME_EXCHANGE). Before the swap the directory is entirely old,
  after it entirely new; the next build removes what a killed one left beside it.
  (Where the file system lacks RENAME_EXCHANGE, two renames leave a moment with no
  directory at all, never a mixed one, and the next build restores the old one.)
- Unchanged files keep their inode and mtime; with nothing to change nothing is touched.
- Ownership: a file is written only at a path the compiler produces, as a new regular
  file (never through a symlink: every path under the output directory is reached with
  O_NOFOLLOW or lstat, and a symlink, directory or device where holosc needs a file or a
  directory is an error). A file that the previous build's holos.lock.json lists and this
  build does not is removed only when it still has the digest the lock records and the
  shape of compiled output; everything else is someone else's and is kept.
- Directories: the output directory, every directory above it and every directory that
  holds compiled files must be root's or the caller's and writable by no one else
  (safedir.py); a sticky shared parent such as /tmp is fine. A killed build's leftover
  beside it is renamed back or removed only when it passes the same check, so a
  name-alike another user planted is neither adopted nor deleted.
"""

from __future__ import annotations

import contextlib
import dataclasses
import difflib
import errno
import hashlib
import os
import re
import secrets
import shutil
import stat
import tempfile
from collections.abc import Mapping
from pathlib import Path, PurePosixPath

from holosc.core import layout, names
from holosc.core.compiler import Output
from holosc.core.lock import LOCK_FILE, Lock, unreadable
from holosc.emit import safedir, tree
from holosc.errors import Diagnostic, EmitError, HolosError

UNIT_FILE = re.compile(r"\Aholos-[a-z0-9-]+(@)?\.(service|target|timer)\Z")


@dataclasses.dataclass(frozen=True)
class Changes:
    written: tuple[str, ...]
    removed: tuple[str, ...]
    unchanged: int
    kept: tuple[str, ...] = ()  # stale files edited since holosc wrote them

    @property
    def any(self) -> bool:
        return bool(self.written or self.removed)


@dataclasses.dataclass(frozen=True)
class _Old:
    """What the output directory holds now (empty when it does not exist)."""

    exists: bool
    root: tree.Entry | None
    entries: Mapping[str, tree.Entry]
    lock: Mapping[str, str]  # {path: sha256} the previous build's lock records


def plan_changes(output: Output, root: Path) -> Changes:
    """:raises EmitError: when the directory cannot be read or holds something holosc
    would have to write through (a symlink, a directory where a file goes, ...)."""
    return _plan(output, root, _read_old(output, root))


def _read_old(output: Output, root: Path, at: tuple[int, str] | None = None) -> _Old:
    """What `root` holds; `at` (parent fd, name) opens it where emit checked it."""
    if root.is_symlink():
        raise _error(root, "is a symlink; holosc writes only into a real directory", "-o TARGET")
    try:
        fd = tree.open_dir(at[1], at[0]) if at else tree.open_dir(str(root))
    except FileNotFoundError:
        return _Old(False, None, {}, {})
    except OSError as exc:
        raise _error(root, f"cannot read the output directory: {exc.strerror}") from exc
    try:
        lock = _lock_digests(fd)
        wanted = frozenset({*map(str, output.files), *lock})
        st = os.fstat(fd)
        entries = tree.walk(fd, wanted)
        return _Old(True, tree.Entry(st.st_mode, st.st_uid, st.st_gid), entries, lock)
    except OSError as exc:
        raise _error(root, f"cannot read the output directory: {exc}") from exc
    finally:
        os.close(fd)


def _lock_digests(root_fd: int) -> dict[str, str]:
    """{path: sha256} of the previous build's lock; {} when it is absent or not one."""
    lock = _read_lock(root_fd)
    return {p: d for p, d in lock.files.items() if _compiled_shape(p)} if lock else {}


def previous_lock(root: Path) -> Lock | None:
    """The lock of the build in `root`, None when it has none: read without following a
    symlink, like everything holosc reads from an output directory.

    :raises LoadError: when the lock is there but is not one (a merge conflict in it).
    """
    try:
        fd = tree.open_dir(str(root))
    except OSError:
        return None
    try:
        text = tree.read_file(LOCK_FILE, fd)
    except OSError:
        return None
    finally:
        os.close(fd)
    source = str(root / LOCK_FILE)
    try:
        return Lock.from_json(text, source)
    except (ValueError, HolosError) as exc:  # HolosError: an instance name no label
        raise unreadable(source, exc, LOCK_HINT) from None


LOCK_HINT = (
    "restore it (git checkout), or delete it: then instances get their addresses and ports "
    "anew, and no file of the previous build is removed"
)


def _read_lock(root_fd: int) -> Lock | None:
    try:
        return Lock.from_json(tree.read_file(LOCK_FILE, root_fd), LOCK_FILE)
    except (OSError, ValueError, HolosError):
        return None


def _compiled_shape(rel: str) -> bool:
    """Whether `rel` is a path the compiler can produce (a lock may name anything)."""
    parts = rel.split("/")
    if len(parts) == 1:
        return rel == LOCK_FILE or UNIT_FILE.match(rel) is not None
    if not names.is_label(parts[0]):
        return False
    if len(parts) == 2:
        return layout.is_project_file(parts[1])
    return len(parts) == 3 and names.is_label(parts[1]) and parts[2] in layout.INSTANCE_FILES


def _plan(output: Output, root: Path, old: _Old) -> Changes:
    _check_conflicts(output, root, old)
    written, unchanged = [], 0
    for path, file in output.files.items():
        entry = old.entries.get(str(path))
        if entry is not None and stat.S_IMODE(entry.mode) == file.mode and entry.data == file.data:
            unchanged += 1
        else:
            written.append(str(path))
    removed, kept = [], []
    for rel, digest in sorted(old.lock.items()):
        entry = old.entries.get(rel)
        if PurePosixPath(rel) in output.files or entry is None or not entry.is_file:
            continue
        if hashlib.sha256(entry.data or b"").hexdigest() == digest:
            removed.append(rel)
        else:
            kept.append(rel)
    return Changes(tuple(written), tuple(removed), unchanged, tuple(kept))


def _check_conflicts(output: Output, root: Path, old: _Old) -> None:
    problems = []
    for path in output.files:
        for parent in reversed(path.parents[:-1]):
            entry = old.entries.get(str(parent))
            if entry is not None and not entry.is_dir:
                problems.append(f"{parent} is a {_kind(entry)}, not a directory")
        entry = old.entries.get(str(path))
        if entry is not None and not entry.is_file:
            problems.append(f"{path} is a {_kind(entry)}, not a regular file")
    if problems:
        raise EmitError(
            f"cannot write {root}",
            [
                Diagnostic(
                    f"{p}; holosc never writes through or over it",
                    file=str(root),
                    hint="move it out of the output directory",
                )
                for p in sorted(set(problems))
            ],
        )


def _kind(entry: tree.Entry) -> str:
    if stat.S_ISLNK(entry.mode):
        return "symlink"
    return "directory" if entry.is_dir else "special file"


def emit(output: Output, root: Path) -> Changes:
    """Make `root` hold exactly `output` plus what holosc does not own, in one swap.

    :raises EmitError: when the directory cannot be written; nothing changed then.
    """
    absolute = Path(os.path.abspath(root))
    parent, name = absolute.parent, absolute.name
    if not name:
        raise _error(root, "the root directory cannot be an output directory")
    # The staging directories go beside the output: a shared sticky parent (/tmp) is
    # fine, an output directory another user made or can write is not (safedir.py).
    parent_fd = safedir.open_trusted_dir(parent, create=True, shared_ok=True, shown=root)
    try:
        _check_output_dir(parent_fd, name, root)
        _clean_leftovers(parent_fd, name)
        old = _read_old(output, root, (parent_fd, name))
        _check_subdirectories(output, root, old)
        changes = _plan(output, root, old)
        if changes.any:
            _replace(parent_fd, name, output, old, changes)
        return changes
    except OSError as exc:
        raise _error(root, f"cannot write the output directory: {exc}") from exc
    finally:
        os.close(parent_fd)


def _check_output_dir(parent_fd: int, name: str, root: Path) -> None:
    """:raises EmitError: when the output directory is another user's or others can
    write it (a symlink or a file there is _read_old's error)."""
    try:
        st = os.stat(name, dir_fd=parent_fd, follow_symlinks=False)
    except FileNotFoundError:
        return
    if stat.S_ISDIR(st.st_mode):
        safedir.check_entry(st.st_mode, st.st_uid, os.path.abspath(root), root)


def _check_subdirectories(output: Output, root: Path, old: _Old) -> None:
    """The directories that will hold compiled files keep their owner and mode in the
    new tree: one another user owns or can write is refused like the output directory."""
    holding = {str(parent) for path in output.files for parent in path.parents[:-1]}
    for rel in sorted(holding):
        entry = old.entries.get(rel)
        if entry is not None and entry.is_dir:
            safedir.check_entry(entry.mode, entry.uid, os.path.join(root, rel), root)


def _replace(parent_fd: int, name: str, output: Output, old: _Old, changes: Changes) -> None:
    staging = f"{_prefix(name)}new-{os.getpid()}-{secrets.token_hex(4)}"
    try:
        _build(parent_fd, name, staging, output, old, changes)
        if old.exists:
            _swap(parent_fd, staging, name)  # `staging` now names the old tree
        else:
            _move_new(parent_fd, staging, name)
            return
    except BaseException:
        _remove(parent_fd, staging)
        raise
    _remove(parent_fd, staging)


def _build(
    parent_fd: int, name: str, staging: str, output: Output, old: _Old, changes: Changes
) -> None:
    """The new tree under `staging`: the old entries, hard-linked, except those replaced
    or removed; then the written files."""
    os.mkdir(staging, 0o700 if old.root else 0o777, dir_fd=parent_fd)
    new_fd = tree.open_dir(staging, parent_fd)
    try:
        if old.root is not None:
            _own(new_fd, old.root)
            old_fd = tree.open_dir(name, parent_fd)
            try:
                _link_old(old_fd, new_fd, old, {*changes.written, *changes.removed})
            finally:
                os.close(old_fd)
        for rel in changes.written:
            file = output.files[PurePosixPath(rel)]
            head, _, base = rel.rpartition("/")
            _make_dirs(new_fd, head)
            with tree.dir_at(head, new_fd) as fd:
                tree.write_new(base, fd, file.data, file.mode)
        for rel in changes.removed:  # directories emptied by removals go too
            _prune(new_fd, rel)
    finally:
        os.close(new_fd)


def _link_old(old_fd: int, new_fd: int, old: _Old, skip: set[str]) -> None:
    """Recreate the old directories and hard-link every other old entry but `skip`:
    foreign files, symlinks (as symlinks) and unchanged compiled files keep their inodes."""
    for rel, entry in old.entries.items():  # top-down: a directory before its entries
        head, _, base = rel.rpartition("/")
        with tree.dir_at(head, new_fd) as dst:
            if entry.is_dir:
                os.mkdir(base, 0o700, dir_fd=dst)
                sub = tree.open_dir(base, dst)
                try:
                    _own(sub, entry)
                finally:
                    os.close(sub)
            elif rel not in skip:
                with tree.dir_at(head, old_fd) as src:
                    os.link(base, base, src_dir_fd=src, dst_dir_fd=dst, follow_symlinks=False)


def _own(fd: int, like: tree.Entry) -> None:
    """Give a new directory the mode (and, as root, the owner) of the one it replaces."""
    if os.geteuid() == 0 and (like.uid, like.gid) != (-1, -1):
        os.fchown(fd, like.uid, like.gid)
    os.fchmod(fd, stat.S_IMODE(like.mode))


def _make_dirs(root_fd: int, rel: str) -> None:
    done = ""
    for part in [p for p in rel.split("/") if p]:
        with tree.dir_at(done, root_fd) as fd, contextlib.suppress(FileExistsError):
            os.mkdir(part, 0o777, dir_fd=fd)
        done = f"{done}/{part}" if done else part


def _prune(root_fd: int, rel: str) -> None:
    parts = rel.split("/")[:-1]
    while parts:
        with tree.dir_at("/".join(parts[:-1]), root_fd) as fd:
            try:
                os.rmdir(parts[-1], dir_fd=fd)
            except OSError:
                return
        parts.pop()


def _swap(parent_fd: int, staging: str, name: str) -> None:
    """Exchange `staging` and `name` atomically; afterwards `staging` names the old tree."""
    try:
        tree.renameat2(parent_fd, staging, name, tree.RENAME_EXCHANGE)
    except OSError as exc:
        if exc.errno not in (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP):
            raise
        # No RENAME_EXCHANGE here: park the old tree, then rename the new one in. A kill
        # between the two leaves no directory; the next build renames the old one back.
        parked = f"{_prefix(name)}old-{os.getpid()}-{secrets.token_hex(4)}"
        os.rename(name, parked, src_dir_fd=parent_fd, dst_dir_fd=parent_fd)
        os.rename(staging, name, src_dir_fd=parent_fd, dst_dir_fd=parent_fd)
        os.rename(parked, staging, src_dir_fd=parent_fd, dst_dir_fd=parent_fd)


def _move_new(parent_fd: int, staging: str, name: str) -> None:
    try:
        tree.renameat2(parent_fd, staging, name, tree.RENAME_NOREPLACE)
    except OSError as exc:
        if exc.errno not in (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP):
            raise
        os.rename(staging, name, src_dir_fd=parent_fd, dst_dir_fd=parent_fd)


def _prefix(name: str) -> str:
    return f".{name}.holosc-"


def _clean_leftovers(parent_fd: int, name: str) -> None:
    """Remove what killed builds left beside the output directory (not a running one's),
    and put back an old tree that a build without RENAME_EXCHANGE had parked."""
    prefix = _prefix(name)
    for entry in sorted(os.listdir(parent_fd)):
        kind, _, rest = entry.removeprefix(prefix).partition("-")
        pid = rest.split("-", 1)[0]
        if not entry.startswith(prefix) or kind not in ("new", "old") or not pid.isdigit():
            continue
        st = os.stat(entry, dir_fd=parent_fd, follow_symlinks=False)
        trusted = safedir.is_trusted(st.st_mode, st.st_uid, shared_ok=False)
        if not stat.S_ISDIR(st.st_mode) or not trusted:
            continue  # not a build's: someone else's name-alike is left alone
        if int(pid) != os.getpid() and _alive(int(pid)):
            continue
        if kind == "old" and not _exists(parent_fd, name):
            os.rename(entry, name, src_dir_fd=parent_fd, dst_dir_fd=parent_fd)
        else:
            _remove(parent_fd, entry)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _exists(dir_fd: int, name: str) -> bool:
    try:
        os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
    except FileNotFoundError:
        return False
    return True


def _remove(parent_fd: int, name: str) -> None:
    """rmtree of our own staging directory (it never follows a symlink)."""
    if _exists(parent_fd, name):
        shutil.rmtree(name, dir_fd=parent_fd, ignore_errors=True)


def _error(root: Path, message: str, hint: str | None = None) -> EmitError:
    return EmitError(f"cannot write {root}", [Diagnostic(message, file=str(root), hint=hint)])


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


def diff(output: Output, root: Path) -> str:
    """A unified diff from the directory's contents to what `emit` would write. Only
    regular files reached without a symlink are read."""
    old = _read_old(output, root)
    changes = _plan(output, root, old)
    chunks: list[str] = []
    for rel in [*changes.written, *changes.removed]:
        entry = old.entries.get(rel)
        had = entry is not None and entry.is_file
        if entry is not None and had and entry.data is None:
            chunks.append(f"a/{rel} is larger than holosc writes; not shown\n")
            continue
        before = (entry.data or b"") if entry is not None and had else b""
        new_file = output.files.get(PurePosixPath(rel))
        after = new_file.data if new_file else b""
        try:
            a, b = before.decode("utf-8"), after.decode("utf-8")
        except UnicodeDecodeError:
            chunks.append(f"Binary files a/{rel} and b/{rel} differ\n")
            continue
        body = "".join(
            difflib.unified_diff(
                a.splitlines(keepends=True),
                b.splitlines(keepends=True),
                fromfile=f"a/{rel}" if had else "/dev/null",
                tofile=f"b/{rel}" if new_file else "/dev/null",
            )
        )
        if not body and new_file and had:
            body = f"mode of {rel} changes to {new_file.mode:o}\n"
        chunks.append(body)
    return "".join(chunks)
