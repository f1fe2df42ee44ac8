"""The NoCloud seed ISO (volume label `cidata`), built in memory, byte-for-byte stable.

pycdlib stamps the volume descriptors and directory records with `time.time()` rendered
through `time.localtime()` (so the host's timezone leaks in as a GMT offset). While
building, we pin the clock to a constant and make local time UTC, so the ISO depends only
on its contents. (The patch is process-wide; the compiler is single-threaded.)
"""

from __future__ import annotations

import io
import time
from unittest import mock

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
    with (
        mock.patch("time.time", return_value=SEED_EPOCH),
        mock.patch("time.localtime", time.gmtime),
    ):
        iso = pycdlib.PyCdlib()
        iso.new(interchange_level=3, joliet=3, rock_ridge="1.09", vol_ident="cidata")
        for name in sorted(files):
            data = files[name].encode("utf-8")
            iso.add_fp(
                io.BytesIO(data), len(data), _ISO_NAMES[name], rr_name=name, joliet_path=f"/{name}"
            )
        out = io.BytesIO()
        iso.write_fp(out)
        iso.close()
    return out.getvalue()
