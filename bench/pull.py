"""Image pull throughput and verify speed against a local HTTP server (prints, asserts nothing).

Serves a sparse file of SIZE MiB (default 200) from `python -m http.server` on 127.0.0.1
(its own process, so it does not compete for our GIL) under the registry paths of
ubuntu:noble (sha256) and debian:12 (sha512), then measures:
  * `pull.pull()` end to end (checksum fetch, download, hashing, fsync, rename);
  * the same image again (cache hit: checksum fetch only);
  * `pull.verify()` of the cached file, as seconds per GiB;
  * bare `hashlib.file_digest` on the same file (the floor for verify).

Usage: python bench/pull.py [SIZE_MIB]
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.parse
from collections.abc import Callable
from functools import partial
from pathlib import Path

from holosc.core import images
from holosc.tools import pull

GIB = 1 << 30
MIB = 1 << 20


def serve(root: Path) -> tuple[subprocess.Popen[bytes], str]:
    """`python -m http.server` on a free port, once it accepts connections."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    argv = [sys.executable, "-m", "http.server", str(port), "--bind", "127.0.0.1"]
    server = subprocess.Popen(
        [*argv, "--directory", str(root)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    for _ in range(100):
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port)):
            break
        time.sleep(0.05)
    return server, f"http://127.0.0.1:{port}"


def publish(root: Path, entry: images.RegistryImage, size: int) -> None:
    """A sparse image and a GNU checksum file at the entry's URL paths below `root`."""
    image = root / urllib.parse.urlsplit(entry.url).path.lstrip("/")
    image.parent.mkdir(parents=True, exist_ok=True)
    with image.open("wb") as stream:
        stream.truncate(size)
    with image.open("rb") as stream:
        digest = hashlib.file_digest(stream, entry.algorithm).hexdigest()
    sums = root / urllib.parse.urlsplit(entry.checksum_url).path.lstrip("/")
    sums.write_text(f"{digest}  {image.name}\n")


def timed(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def main() -> None:
    size = int(sys.argv[1]) * MIB if len(sys.argv) > 1 else 200 * MIB
    for name in ("http_proxy", "HTTP_PROXY", "all_proxy", "ALL_PROXY"):
        os.environ.pop(name, None)
    with tempfile.TemporaryDirectory() as tmp:
        root, cache = Path(tmp) / "www", Path(tmp) / "cache"
        for ref in ("ubuntu:noble", "debian:12"):
            publish(root, pull.entry_for(ref), size)
        server, mirror = serve(root)
        print(f"image size: {size / MIB:.0f} MiB, server {mirror}, {os.cpu_count()} CPUs")
        try:
            for ref in ("ubuntu:noble", "debian:12"):
                measure(pull.entry_for(ref), cache, mirror, size)
        finally:
            server.terminate()
            server.wait()


def measure(entry: images.RegistryImage, cache: Path, mirror: str, size: int) -> None:
    fetch = timed(partial(pull.pull, entry, cache, mirror=mirror))
    again = timed(partial(pull.pull, entry, cache, mirror=mirror))
    check = timed(partial(pull.verify, entry, cache))
    floor = timed(partial(pull.hash_file, pull.image_path(entry, cache), entry.algorithm))
    print(
        f"{entry.ref:<13} {entry.algorithm}: pull {size / MIB / fetch:7.1f} MiB/s "
        f"({fetch:.2f} s)  cached re-pull {again * 1000:6.1f} ms  "
        f"verify {check * GIB / size:5.2f} s/GiB  (bare hash {floor * GIB / size:5.2f} s/GiB)"
    )


if __name__ == "__main__":
    main()
