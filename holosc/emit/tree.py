"""Directory trees read and built through directory file descriptors, never a symlink.

Every path below a root is reached one component at a time with O_NOFOLLOW (or
lstat), so a symlink anywhere under the root is seen as a symlink, never entered; and
directories are swapped with one renameat2(2) call.
"""

from __future__ import annotations

import contextlib
import ctypes
import dataclasses
import errno
import os
import stat
from collections.abc import Iterator

from holosc.core.compiler import MAX_OUTPUT_BYTES

DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
# What holosc reads back from an output directory is at most what it can write there: a
# larger file there is someone else's.
MAX_READ = MAX_OUTPUT_BYTES
RENAME_NOREPLACE = 1
RENAME_EXCHANGE = 2


class FileTooLarge(OSError):
    """A file larger than what is read back (read_file's `limit`)."""


@dataclasses.dataclass(frozen=True, slots=True)
class Entry:
    """One path of a tree: its lstat mode and owner, and its bytes when they were asked for."""

    mode: int
    uid: int = -1
    gid: int = -1
    data: bytes | None = None

    @property
    def is_dir(self) -> bool:
        return stat.S_ISDIR(self.mode)

    @property
    def is_file(self) -> bool:
        return stat.S_ISREG(self.mode)


def open_dir(name: str, dir_fd: int | None = None) -> int:
    """A directory's fd; ELOOP or ENOTDIR when `name` is a symlink or not a directory."""
    return os.open(name, DIR_FLAGS, dir_fd=dir_fd)


def walk(root_fd: int, wanted: frozenset[str] = frozenset()) -> dict[str, Entry]:
    """Every path below `root_fd` ('a/b' form) with its mode, top-down; symlinks are
    entries, never followed. Regular files in `wanted` come with their bytes."""
    entries: dict[str, Entry] = {}
    _walk(root_fd, "", wanted, entries)
    return entries


def _walk(fd: int, prefix: str, wanted: frozenset[str], entries: dict[str, Entry]) -> None:
    with os.scandir(fd) as it:
        children = sorted((e.name, e.stat(follow_symlinks=False)) for e in it)
    for name, st in children:
        rel = prefix + name
        entry = Entry(st.st_mode, st.st_uid, st.st_gid)
        if stat.S_ISREG(st.st_mode) and rel in wanted:
            with contextlib.suppress(FileTooLarge):  # then not what holosc wrote: data None
                entry = dataclasses.replace(entry, data=read_file(name, fd))
        entries[rel] = entry
        if stat.S_ISDIR(st.st_mode):
            sub = open_dir(name, fd)
            try:
                _walk(sub, rel + "/", wanted, entries)
            finally:
                os.close(sub)


def read_file(name: str, dir_fd: int, limit: int = MAX_READ) -> bytes:
    """A regular file's bytes; OSError when it is a symlink or not a regular file, and
    EFBIG past `limit` bytes (whatever its size says: a file can grow while read)."""
    fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK, dir_fd=dir_fd)
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise OSError(errno.EINVAL, f"{name} is not a regular file")
        chunks, size = [], 0
        while chunk := os.read(fd, min(1 << 20, limit + 1 - size)):
            chunks.append(chunk)
            size += len(chunk)
            if size > limit:
                raise FileTooLarge(errno.EFBIG, f"{name} is larger than {limit} bytes")
        return b"".join(chunks)
    finally:
        os.close(fd)


def write_new(name: str, dir_fd: int, data: bytes, mode: int) -> None:
    """Create `name` (it must not exist) with `data` and `mode`."""
    fd = os.open(
        name,
        os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC,
        0o600,
        dir_fd=dir_fd,
    )
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
        os.fchmod(fd, mode)
    finally:
        os.close(fd)


@contextlib.contextmanager
def dir_at(rel: str, root_fd: int) -> Iterator[int]:
    """The fd of directory `rel` ('a/b') below `root_fd`, each component without symlinks."""
    fd = os.dup(root_fd)
    try:
        for part in [p for p in rel.split("/") if p]:
            sub = open_dir(part, fd)
            os.close(fd)
            fd = sub
        yield fd
    finally:
        os.close(fd)


_libc = ctypes.CDLL(None, use_errno=True)


def renameat2(dir_fd: int, old: str, new: str, flags: int) -> None:
    """renameat2(2) within one directory.

    :raises OSError: EINVAL when the file system does not support `flags`.
    """
    func = getattr(_libc, "renameat2", None)
    if func is None:
        raise OSError(errno.ENOSYS, "renameat2 is not available")
    if func(dir_fd, os.fsencode(old), dir_fd, os.fsencode(new), flags) != 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err), old)
