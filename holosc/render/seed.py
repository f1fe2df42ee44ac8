"""The NoCloud seed ISO (volume label `cidata`), built in memory, byte-for-byte stable.

pycdlib stamps the volume descriptors and directory records with `time.time()` rendered
through `time.localtime()` (so the host's timezone leaks in as a GMT offset). While
building, we pin the clock to a constant and make local time UTC, so the ISO depends only
on its contents. (The patch is process-wide; the compiler is single-threaded.)

An image depends on its files' contents only through their sizes (which fix every extent
and length field) and the bytes at each file's extent; ISO 9660 has no checksum. So the
image is laid out once per set of sizes (the replicas of a service share them) and each
seed copies its files into that layout. tests/test_seed.py compares with pycdlib.
"""

from __future__ import annotations

import contextlib
import functools
import io
import time
from collections.abc import Iterator

import pycdlib

# 2000-01-01T00:00:00Z; any constant works, a recognisable one helps when debugging.
SEED_EPOCH = 946684800.0

_ISO_NAMES = {
    "user-data": "/USERDATA.;1",
    "meta-data": "/METADATA.;1",
    "network-config": "/NETWORKC.;1",
}


def build_seed(files: dict[str, str]) -> bytes:
    """An ISO 9660 image with Rock Ridge and Joliet names for each NoCloud file."""
    names = tuple(sorted(files))
    data = [files[name].encode("utf-8") for name in names]
    image, offsets = _layout(names, tuple(map(len, data)))
    out = bytearray(image)
    for offset, content in zip(offsets, data, strict=True):
        out[offset : offset + len(content)] = content
    return bytes(out)


@functools.lru_cache(maxsize=64)
def _layout(names: tuple[str, ...], sizes: tuple[int, ...]) -> tuple[bytes, tuple[int, ...]]:
    """The image of zero-filled files of these names and sizes, and each file's offset."""
    files = {name: bytes(size) for name, size in zip(names, sizes, strict=True)}
    return pycdlib_seed(files)


def pycdlib_seed(files: dict[str, bytes]) -> tuple[bytes, tuple[int, ...]]:
    """pycdlib's image of `files` and the byte offset of each file (in sorted name order)."""
    with _pinned_clock():
        iso = pycdlib.PyCdlib()
        iso.new(interchange_level=3, joliet=3, rock_ridge="1.09", vol_ident="cidata")
        for name in sorted(files):
            data = files[name]
            iso.add_fp(
                io.BytesIO(data), len(data), _ISO_NAMES[name], rr_name=name, joliet_path=f"/{name}"
            )
        out = io.BytesIO()
        iso.write_fp(out)
        offsets = tuple(
            iso.get_record(iso_path=_ISO_NAMES[name]).extent_location() * iso.logical_block_size
            for name in sorted(files)
        )
        iso.close()
    return out.getvalue(), offsets


@contextlib.contextmanager
def _pinned_clock() -> Iterator[None]:
    saved = time.time, time.localtime
    time.time, time.localtime = (lambda: SEED_EPOCH), time.gmtime
    try:
        yield
    finally:
        time.time, time.localtime = saved
