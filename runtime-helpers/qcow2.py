"""What an image file may make QEMU open: qcow2 headers, read without QEMU.

A qcow2 header can name other files that QEMU opens with the image: a backing file (a
host path, a relative path, a `json:{...}` or `nbd:` description) and an external data
file that holds the guest's blocks. An image from a registry, a mirror or anywhere on
disk is data from a stranger, so holosc lets QEMU follow such names only in the files
it made itself (instance overlays and build layers), and only to names of the shapes it
writes, each with its format given. Everything else must be self-contained.

The header is parsed here, following QEMU's docs/interop/qcow2.txt and block/qcow2.c
(which header bytes it reads and when), rather than through `qemu-img info`: no other
process, no file opened but the image itself, and the same answer on every QEMU. What
QEMU would read differently is refused: an unknown incompatible feature, a truncated
header, a backing name QEMU would reject. Raw images have no header: their format is
declared wherever they are opened (never probed), so they cannot name anything.

Standard library only: used by holos-image, holos-bake and holosc.
"""

from __future__ import annotations

import dataclasses
import json
import os
import stat
import struct
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

MAGIC = b"QFI\xfb"
EXT_END = 0
EXT_BACKING_FORMAT = 0xE2792ACA
EXT_DATA_FILE = 0x44415441
INCOMPAT_DATA_FILE = 1 << 2
INCOMPAT_KNOWN = 0b11111  # dirty, corrupt, external data file, compression type, extended L2
MAX_CHAIN = 512  # a build's layers and the image below; a loop is refused long before
FORMATS = ("qcow2", "raw")


class UnsafeImage(Exception):
    """An image names files outside what holosc made, or cannot be read as its format."""


@dataclasses.dataclass(frozen=True, slots=True)
class Header:
    version: int
    backing: str | None  # the backing file name QEMU would open, None for none
    backing_format: str | None
    data_file: str | None  # the external data file's name ("" when unnamed), else None


def quoted(name: str) -> str:
    """A name from a header, safe to print: escaped and cut short."""
    text = json.dumps(name, ensure_ascii=True)
    return text if len(text) <= 120 else text[:100] + '..."'


def read_header(path: Path) -> Header:
    """The names in a qcow2 image's header.

    :raises UnsafeImage: when the file is not a qcow2 image QEMU would open, or cannot be
        read (a FIFO or directory is refused without blocking).
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as exc:
        raise UnsafeImage(f"cannot read {path}: {exc.strerror or exc}") from exc
    with os.fdopen(fd, "rb") as stream:
        mode = os.fstat(fd).st_mode
        if not (stat.S_ISREG(mode) or stat.S_ISBLK(mode)):
            raise UnsafeImage(f"{path} is not a regular file or block device")
        return _parse(stream, path)


def _parse(stream: BinaryIO, path: Path) -> Header:
    head = stream.read(104)
    if len(head) < 72 or head[:4] != MAGIC:
        raise UnsafeImage(f"{path} is not a qcow2 image (no qcow2 header)")
    version, backing_offset, backing_size, cluster_bits = struct.unpack(">IQII", head[4:24])
    if version not in (2, 3):
        raise UnsafeImage(f"{path} is qcow2 version {version}; QEMU's qcow2 reads 2 and 3")
    if not 9 <= cluster_bits <= 21:
        raise UnsafeImage(f"{path}: qcow2 cluster_bits {cluster_bits} is out of range")
    cluster = 1 << cluster_bits
    incompatible, header_length = 0, 72
    if version == 3:
        if len(head) < 104:
            raise UnsafeImage(f"{path}: truncated qcow2 header")
        incompatible = struct.unpack(">Q", head[72:80])[0]
        header_length = struct.unpack(">I", head[100:104])[0]
        if header_length < 104 or header_length > cluster:
            raise UnsafeImage(f"{path}: qcow2 header length {header_length} is invalid")
    if incompatible & ~INCOMPAT_KNOWN:
        raise UnsafeImage(f"{path}: unknown qcow2 incompatible features {incompatible:#x}")
    # QEMU reads the extensions up to the backing file name, or the end of the cluster.
    end = backing_offset if 0 < backing_offset < cluster else cluster
    extensions = _extensions(stream, path, header_length, end)
    backing = None
    if backing_offset and backing_size:  # QEMU reads a name only when both are set
        if backing_size > 1023:
            raise UnsafeImage(f"{path}: qcow2 backing file name is too long")
        stream.seek(backing_offset)
        raw = stream.read(backing_size)
        if len(raw) != backing_size:
            raise UnsafeImage(f"{path}: truncated qcow2 backing file name")
        backing = raw.decode("utf-8", "surrogateescape")
    fmt = extensions.get(EXT_BACKING_FORMAT)
    data_file = extensions.get(EXT_DATA_FILE)
    if data_file is None and incompatible & INCOMPAT_DATA_FILE:
        data_file = b""  # QEMU then needs one given at open: refused all the same
    return Header(
        version,
        backing,
        None if fmt is None else fmt.decode("utf-8", "surrogateescape"),
        None if data_file is None else data_file.decode("utf-8", "surrogateescape"),
    )


def _extensions(stream: BinaryIO, path: Path, offset: int, end: int) -> dict[int, bytes]:
    """{type: data} of the header extensions between `offset` and `end`."""
    stream.seek(offset)
    found: dict[int, bytes] = {}
    while offset + 8 <= end:
        entry = stream.read(8)
        if len(entry) < 8:
            raise UnsafeImage(f"{path}: truncated qcow2 header extensions")
        kind, length = struct.unpack(">II", entry)
        if kind == EXT_END:
            break
        if length > end - offset - 8:
            raise UnsafeImage(f"{path}: qcow2 header extension {kind:#x} is too large")
        data = stream.read(length)
        if len(data) != length:
            raise UnsafeImage(f"{path}: truncated qcow2 header extension {kind:#x}")
        found.setdefault(kind, data)
        padded = (length + 7) & ~7
        stream.seek(padded - length, os.SEEK_CUR)
        offset += 8 + padded
    return found


def has_protocol(name: str) -> bool:
    """QEMU reads `json:...`, `nbd:...`, `file:...` as a description, not a path
    (path_has_protocol: a colon before the first slash)."""
    return ":" in name.split("/", 1)[0]


def require_self_contained(path: Path, fmt: str, what: str) -> None:
    """Refuse an image that would make QEMU open anything but itself.

    :raises UnsafeImage: naming `what` (e.g. "image ubuntu:noble") and the reason.
    """
    if fmt == "raw":
        return  # no header: opened as raw everywhere, never probed
    if fmt != "qcow2":
        raise UnsafeImage(f"{what}: format {fmt!r}: holosc opens qcow2 and raw images only")
    try:
        header = read_header(path)
    except UnsafeImage as exc:
        raise UnsafeImage(f"{what}: {exc}") from None
    if header.data_file is not None:
        raise UnsafeImage(
            f"{what}: its qcow2 header names an external data file {quoted(header.data_file)}"
        )
    if header.backing is not None:
        raise UnsafeImage(f"{what}: its qcow2 header names a backing file {quoted(header.backing)}")


def check_chain(top: Path, fmt: str, own: Callable[[Path], bool], what: str) -> tuple[Path, str]:
    """Refuse a chain of images that reaches beyond what holosc made; returns the image
    at its bottom and that image's format.

    From `top` down: a file `own` says holosc made may name a backing file, by a plain
    path with its format; the first file holosc did not make must be self-contained (no
    backing file, no data file), and ends the chain.

    :raises UnsafeImage: naming `what` and the file that is refused.
    """
    path, seen = top, set[tuple[int, int]]()
    for _ in range(MAX_CHAIN):
        if not own(path):
            require_self_contained(path, fmt, what if path == top else f"{what}: {path}")
            return path, fmt
        if fmt != "qcow2":
            raise UnsafeImage(f"{what}: {path}: holosc makes qcow2 layers only, not {fmt!r}")
        header = read_header(path)
        if header.data_file is not None:
            raise UnsafeImage(f"{what}: {path} names an external data file")
        if header.backing is None:
            return path, fmt
        if has_protocol(header.backing) or "\0" in header.backing:
            raise UnsafeImage(
                f"{what}: {path} names a backing file that is not a path: {quoted(header.backing)}"
            )
        if header.backing_format not in FORMATS:
            raise UnsafeImage(
                f"{what}: {path} names its backing file without a format QEMU need not probe"
            )
        st = os.stat(path)
        if (st.st_dev, st.st_ino) in seen:
            raise UnsafeImage(f"{what}: {path}: its backing chain is a loop")
        seen.add((st.st_dev, st.st_ino))
        path, fmt = path.parent / header.backing, header.backing_format
    raise UnsafeImage(f"{what}: its backing chain is longer than {MAX_CHAIN}")
