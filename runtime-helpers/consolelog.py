"""Serial console logs: their tail read from the end, and their size bounded on disk.

QEMU appends everything a guest writes to its serial port to the instance's console.log
(`-chardev ...,logfile=,logappend=on`) and has no size limit: a guest printing in a loop
grows it by about 100 KB/s under TCG (measured; docs/units.md). So:

- readers (`holosc logs --console`, a build's failure message) read only the end of the
  file, in memory independent of its size (`tail`);
- `trim` keeps a log under MAX_BYTES by cutting its beginning down to KEEP_BYTES: the
  project's console-logs timer runs it every minute while instances run (the launch
  script does the same with tail(1) before QEMU starts, with these bounds). ext4 and
  XFS cut in place (fallocate COLLAPSE_RANGE), so QEMU's appends are never lost;
  elsewhere the tail is copied to the start, and what the guest writes during that copy
  may be lost or out of order.

Usage::

    holos-console-log trim [--max BYTES] [--keep BYTES] LOG_OR_DIR...

A directory stands for every `*/console.log` below it (a project's instances). Exit
codes: 0 done (missing logs are fine), 1 failure, 2 usage. Standard library only.
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import os
import re
import stat
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path

PROG = "holos-console-log"
MAX_BYTES = 2 << 20  # a log reaching this is cut...
KEEP_BYTES = 1 << 20  # ...to about this much of its end (a full boot is ~100 KiB)
TAIL_LIMIT = 4 << 20  # most bytes a reader takes from the end, whatever it asks for
_BLOCK = 64 << 10
_COLLAPSE_RANGE = 0x08  # FALLOC_FL_COLLAPSE_RANGE, linux/falloc.h
_CSI = re.compile(r"\x1b\[[0-9;?]*[ -/]*[@-~]")


def tail(path: Path, lines: int, limit: int = TAIL_LIMIT) -> bytes:
    """The last `lines` lines of `path` (LF-separated, as tail(1) counts them), from at
    most `limit` bytes of its end read backwards: memory does not grow with the file.

    :raises OSError: when it cannot be opened or read.
    """
    if lines <= 0:
        return b""
    chunks: list[bytes] = []
    with open(path, "rb") as log:
        end = start = log.seek(0, os.SEEK_END)
        found = 0
        while start > 0 and end - start < limit and found <= lines:
            step = min(_BLOCK, start, limit - (end - start))
            start -= step
            log.seek(start)
            chunks.append(log.read(step))
            found += chunks[-1].count(b"\n")
    pieces = b"".join(reversed(chunks)).split(b"\n")
    complete = pieces[-1] == b""  # the file ends with a newline
    if complete:
        pieces.pop()
    return b"\n".join(pieces[-lines:]) + (b"\n" if complete and pieces else b"")


def tail_bytes(path: Path, size: int) -> bytes:
    """The last `size` bytes of `path`; b"" when it cannot be read."""
    with contextlib.suppress(OSError), open(path, "rb") as log:
        end = log.seek(0, os.SEEK_END)
        log.seek(max(0, end - size))
        return log.read(size)
    return b""


def last_line(path: Path, size: int = 400) -> str:
    """The last line of `path` that says something, without terminal escapes that colour
    or move (a boot's "[  OK  ]"), for a status line; still to pass `terminal_safe`."""
    text = tail_bytes(path, size).decode(errors="replace")
    text = _CSI.sub("", text)
    lines = [line.strip() for line in text.replace("\r", "\n").split("\n") if line.strip()]
    return lines[-1][:160] if lines else ""


def trim(path: Path, max_bytes: int = MAX_BYTES, keep: int = KEEP_BYTES) -> int:
    """Cut the beginning of `path` when it holds `max_bytes` or more, keeping about its
    last `keep` bytes; the bytes removed (0: nothing to do or no such file).

    :raises OSError: when the log exists but cannot be cut.
    """
    try:
        fd = os.open(path, os.O_RDWR | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK)
    except FileNotFoundError:
        return 0
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode) or st.st_size < max_bytes:
            return 0
        block = max(st.st_blksize, 4096)
        cut = (st.st_size - keep) // block * block  # COLLAPSE_RANGE takes whole blocks
        if cut <= 0:
            return 0
        try:
            _fallocate(fd, _COLLAPSE_RANGE, 0, cut)
        except OSError as exc:
            if exc.errno not in (errno.EOPNOTSUPP, errno.EINVAL, errno.ENOSYS):
                raise
            _copy_tail(fd, st.st_size - keep, keep)
            return st.st_size - keep
        return cut
    finally:
        os.close(fd)


def _copy_tail(fd: int, cut: int, keep: int) -> None:
    """Without COLLAPSE_RANGE: the end copied to the start of the emptied file. QEMU
    appends (O_APPEND) at whatever the end is at that moment."""
    data = os.pread(fd, keep + _BLOCK, cut)
    os.ftruncate(fd, 0)
    os.pwrite(fd, data, 0)


def _fallocate(fd: int, mode: int, offset: int, length: int) -> None:
    """fallocate(2) with a mode (os.posix_fallocate has none); ctypes only when cutting:
    the compiler imports this module for its bounds."""
    import ctypes
    import ctypes.util

    libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
    call = libc.fallocate
    call.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_longlong, ctypes.c_longlong]
    if call(fd, mode, offset, length) != 0:
        code = ctypes.get_errno()
        raise OSError(code, os.strerror(code))


def logs(paths: Iterable[Path]) -> list[Path]:
    """Each path, or for a directory every */console.log below it."""
    found: list[Path] = []
    for path in paths:
        found += sorted(path.glob("*/console.log")) if path.is_dir() else [path]
    return found


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``holos-console-log``; returns the exit code."""
    parser = argparse.ArgumentParser(prog=PROG, description="Keep console logs bounded.")
    sub = parser.add_subparsers(dest="command", required=True)
    cut = sub.add_parser("trim", help="cut logs that reached --max down to --keep bytes")
    cut.add_argument("--max", type=int, default=MAX_BYTES)
    cut.add_argument("--keep", type=int, default=KEEP_BYTES)
    cut.add_argument("paths", nargs="+", type=Path)
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else 2
    failed = 0
    for log in logs(args.paths):
        try:
            removed = trim(log, args.max, args.keep)
        except OSError as exc:
            print(f"{PROG}: {log}: {exc.strerror or exc}", file=sys.stderr)
            failed = 1
            continue
        if removed:
            print(f"{log}: cut its first {removed} bytes (it had reached {args.max})")
    return failed


if __name__ == "__main__":
    sys.exit(main())
