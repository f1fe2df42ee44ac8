"""How much of a qcow2 file one internal snapshot keeps alive: the clusters that only it
references (its L1 table, its own L2 tables and the data clusters no other snapshot and
not the active image points to). That is what deleting it frees, and what `snapshot
list` shows; qemu-img reports no such figure.

Read without QEMU, after docs/interop/qcow2.txt. On a running guest's disk the active
image's tables may lag QEMU's cache by what it has not flushed yet: the figure is then
approximate. Standard library only.
"""

from __future__ import annotations

import os
import struct
from pathlib import Path
from typing import BinaryIO

MAGIC = b"QFI\xfb"
OFFSET_MASK = 0x00FF_FFFF_FFFF_FE00  # bits 9-55 of L1 and standard L2 entries
COMPRESSED = 1 << 62
EXTENDED_L2 = 1 << 4  # incompatible feature bit: 16-byte L2 entries


class Image:
    """The tables of one qcow2 file, read on demand."""

    def __init__(self, stream: BinaryIO) -> None:
        self.stream = stream
        head = self._read(0, 104)
        if head[:4] != MAGIC:
            raise ValueError("not a qcow2 image")
        version, _, _, self.cluster_bits = struct.unpack(">IQII", head[4:24])
        self.cluster: int = 1 << self.cluster_bits
        l1_size, l1_offset = struct.unpack(">IQ", head[36:48])
        snapshots, snapshots_offset = struct.unpack(">IQ", head[60:72])
        incompatible = struct.unpack(">Q", head[72:80])[0] if version >= 3 else 0
        self.l2_entry = 16 if incompatible & EXTENDED_L2 else 8
        self.active = (l1_offset, l1_size)
        self.snapshots = dict(self._snapshot_table(snapshots_offset, snapshots))
        self._l2: dict[int, frozenset[int]] = {}

    def _read(self, offset: int, size: int) -> bytes:
        self.stream.seek(offset)
        data = self.stream.read(size)
        if len(data) != size:
            raise ValueError("truncated qcow2 image")
        return data

    def _snapshot_table(self, offset: int, count: int) -> list[tuple[str, tuple[int, int]]]:
        entries = []
        for _ in range(count):
            l1_offset, l1_size, id_size, name_size = struct.unpack(">QIHH", self._read(offset, 16))
            extra = struct.unpack(">I", self._read(offset + 36, 4))[0]
            start = offset + 40 + extra + id_size
            name = self._read(start, name_size).decode("utf-8", "replace")
            entries.append((name, (l1_offset, l1_size)))
            end = start + name_size
            offset = end + (-end % 8)
        return entries

    def clusters(self, l1: tuple[int, int]) -> set[int]:
        """Every cluster an L1 table reaches: the table, its L2 tables, their data."""
        offset, size = l1
        found = {c for c in range(offset, offset + max(size * 8, 1), self.cluster)}
        table = self._read(offset, size * 8) if size else b""
        for (entry,) in struct.iter_unpack(">Q", table):
            l2 = entry & OFFSET_MASK
            if l2:
                found.add(l2)
                found |= self._data(l2)
        return found

    def _data(self, l2: int) -> frozenset[int]:
        if l2 not in self._l2:
            table = self._read(l2, self.cluster)
            mask = ~(self.cluster - 1)
            data = set()
            for i in range(0, len(table), self.l2_entry):
                (entry,) = struct.unpack_from(">Q", table, i)
                if entry & COMPRESSED:
                    bits = 62 - (self.cluster_bits - 8)
                    data.add((entry & ((1 << bits) - 1)) & mask)
                elif entry & OFFSET_MASK:
                    data.add(entry & OFFSET_MASK)
            self._l2[l2] = frozenset(data)
        return self._l2[l2]


def exclusive(path: Path, tag: str) -> int | None:
    """Bytes only snapshot `tag` of `path` keeps, or None when the file cannot be read
    as qcow2 or has no such snapshot."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        with os.fdopen(fd, "rb") as stream:
            image = Image(stream)
            if tag not in image.snapshots:
                return None
            mine = image.clusters(image.snapshots[tag])
            others = image.clusters(image.active)
            for name, l1 in image.snapshots.items():
                if name != tag:
                    others |= image.clusters(l1)
            return len(mine - others) * image.cluster
    except (OSError, ValueError, struct.error):
        return None
