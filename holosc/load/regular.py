"""Reading a file holosc was pointed at: a regular file, bounded in size."""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path

from holosc.core.document import MAX_FILE_BYTES


def read_regular(path: Path, limit: int = MAX_FILE_BYTES) -> bytes:
    """The bytes of regular file `path`, at most `limit` of them.

    A FIFO, device or socket is refused before it is read: opening a FIFO would block
    until a writer comes, and /dev/zero never ends. The open itself does not block
    (O_NONBLOCK), and the type and size are checked again on the open file.

    :raises OSError: when the file is missing, not regular, larger than `limit`, or
        unreadable.
    """
    _check_regular(path, os.stat(path), limit)
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC)
    with os.fdopen(fd, "rb") as handle:
        _check_regular(path, os.fstat(fd), limit)
        data = handle.read(limit + 1)
    if len(data) > limit:
        raise OSError(errno.EFBIG, f"{path.name} is larger than {limit} bytes")
    return data


def _check_regular(path: Path, st: os.stat_result, limit: int) -> None:
    if stat.S_ISDIR(st.st_mode):
        raise OSError(errno.EISDIR, f"{path.name} is a directory")
    if not stat.S_ISREG(st.st_mode):
        raise OSError(errno.EINVAL, f"{path.name} is not a regular file (a FIFO or device?)")
    if st.st_size > limit:
        raise OSError(errno.EFBIG, f"{path.name} is {st.st_size} bytes; the limit is {limit}")
