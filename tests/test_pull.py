"""Pulling registry images from a real HTTP server on 127.0.0.1 (never the internet).

The server serves a real qcow2 (made by qemu-img) under the registry's own URL paths, and
HOLOSC_IMAGE_MIRROR points holosc at it. Commands run as `python -m holosc` subprocesses.
"""

from __future__ import annotations

import collections
import dataclasses
import hashlib
import http.server
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
import urllib.parse
from collections.abc import Iterator
from pathlib import Path

import pytest
from holos_runtime.fetch import FetchError
from holos_runtime.imagecache import Cache, backing_file

from holosc.core import images
from holosc.core.validate.checks import build_project
from holosc.errors import UnknownImageError
from holosc.host import recreate
from holosc.load.files import HostFiles
from holosc.load.parse import load_text
from holosc.tools import pull
from tests.conftest import EXAMPLES, require_tool
from tests.privacy import not_private

ALPINE = pull.entry_for("alpine:3.21")
DEBIAN = pull.entry_for("debian:12")
UBUNTU = pull.entry_for("ubuntu:noble")
FEDORA = pull.entry_for("fedora:43")
PROXY_VARS = ("http_proxy", "https_proxy", "all_proxy", "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY")


@dataclasses.dataclass
class Route:
    body: bytes
    status: int = 200
    stall_at: int | None = None  # send this many bytes, then nothing until the test ends
    chunk_delay: float = 0.0  # seconds between 64 KiB chunks
    location: str = ""  # answer 302 with this Location instead of the body


@dataclasses.dataclass
class Site:
    url: str
    routes: dict[str, Route] = dataclasses.field(default_factory=dict)
    hits: collections.Counter[str] = dataclasses.field(default_factory=collections.Counter)
    release: threading.Event = dataclasses.field(default_factory=threading.Event)

    def serve(self, upstream_url: str, route: Route) -> None:
        self.routes[urllib.parse.urlsplit(upstream_url).path] = route


class Handler(http.server.BaseHTTPRequestHandler):
    site: Site

    def do_GET(self) -> None:
        self.site.hits[self.path] += 1
        route = self.site.routes.get(self.path)
        if route is not None and route.location:
            self.send_response(302)
            self.send_header("Location", route.location)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        if route is None or route.status != 200:
            self.send_error(route.status if route else 404)
            return
        self.send_response(200)
        self.send_header("Content-Length", str(len(route.body)))
        self.end_headers()
        body = route.body if route.stall_at is None else route.body[: route.stall_at]
        try:
            for offset in range(0, len(body), 1 << 16):
                self.wfile.write(body[offset : offset + (1 << 16)])
                time.sleep(route.chunk_delay)
            self.wfile.flush()
        except OSError:
            return
        if route.stall_at is not None:
            self.site.release.wait(60)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def server() -> Iterator[Site]:
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    httpd.daemon_threads = True
    site = Site(f"http://127.0.0.1:{httpd.server_address[1]}")
    Handler.site = site
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield site
    site.release.set()
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture
def site(server: Site) -> Iterator[Site]:
    server.routes.clear()
    server.hits.clear()
    server.release.clear()
    yield server
    server.release.set()


@pytest.fixture(scope="module")
def qcow2(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    """A real 4 MiB qcow2 image with random contents."""
    qemu_img = require_tool("qemu-img")
    d = tmp_path_factory.mktemp("qcow2")
    (d / "disk.raw").write_bytes(os.urandom(4 << 20))
    subprocess.run(
        [qemu_img, "convert", "-f", "raw", "-O", "qcow2", d / "disk.raw", d / "disk.qcow2"],
        check=True,
    )
    return (d / "disk.qcow2").read_bytes()


def file_name(entry: images.RegistryImage) -> str:
    return entry.url.rsplit("/", 1)[1]


def digest(entry: images.RegistryImage, data: bytes) -> str:
    return hashlib.new(entry.algorithm, data).hexdigest()


def gnu(entry: images.RegistryImage, data: bytes, star: bool = False) -> bytes:
    """A GNU SHA*SUMS file listing the image among other files."""
    other = hashlib.new(entry.algorithm, b"other").hexdigest()
    mark = "*" if star else " "
    line = f"{digest(entry, data)} {mark}{file_name(entry)}\n"
    return f"{other}  other.qcow2\n{line}{other}  {file_name(entry)}.sig\n".encode()


def bsd(entry: images.RegistryImage, data: bytes) -> bytes:
    tag = entry.algorithm.upper()
    other = hashlib.new(entry.algorithm, b"other").hexdigest()
    return (
        "-----BEGIN PGP SIGNED MESSAGE-----\nHash: SHA256\n\n"
        f"{tag} (other.raw) = {other}\n{tag} ({file_name(entry)}) = {digest(entry, data)}\n"
        "-----BEGIN PGP SIGNATURE-----\nabc\n-----END PGP SIGNATURE-----\n"
    ).encode()


def publish(site: Site, entry: images.RegistryImage, data: bytes, checksums: bytes) -> None:
    site.serve(entry.url, Route(data))
    site.serve(entry.checksum_url, Route(checksums))


def holosc(
    state: Path, site: Site, *args: str, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in PROXY_VARS}
    env |= {"HOLOSC_STATE_DIR": str(state), pull.MIRROR_ENV: site.url}
    return subprocess.run(
        [sys.executable, "-m", "holosc", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def cache_listing(state: Path) -> list[str]:
    """Every file of the cache but the download locks, as paths relative to it."""
    cache = state / "images"
    if not cache.exists():
        return []
    return sorted(
        str(p.relative_to(cache))
        for p in cache.rglob("*")
        if (p.is_file() or p.is_symlink()) and p.parent.name != "locks"
    )


def blob_files(entry: images.RegistryImage, data: bytes) -> list[str]:
    """The cache files of one pulled image: blob, its record, the tag."""
    blob = f"blobs/{entry.algorithm}/{digest(entry, data)}"
    return [blob, f"{blob}.json", f"tags/{entry.name}/{entry.tag}"]


# -- checksum files ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("entry", "layout"),
    [
        (UBUNTU, "gnu"),
        (UBUNTU, "gnu-star"),
        (FEDORA, "bsd"),
        (DEBIAN, "gnu"),
        (ALPINE, "bsd"),
        (ALPINE, "bare"),
    ],
)
def test_parse_checksums_finds_the_image_line(entry: images.RegistryImage, layout: str) -> None:
    data = b"image bytes"
    text = {
        "gnu": gnu(entry, data),
        "gnu-star": gnu(entry, data, star=True),
        "bsd": bsd(entry, data),
        "bare": digest(entry, data).encode() + b"\n",
    }[layout].decode()
    assert pull.parse_checksums(text, file_name(entry), entry.algorithm) == digest(entry, data)


def test_parse_checksums_refuses_ambiguous_or_wrong_algorithm() -> None:
    two = f"{'a' * 64}  one.img\n{'b' * 64}  two.img\n"
    assert pull.parse_checksums(two, "three.img", "sha256") is None
    assert pull.parse_checksums(f"{'a' * 64}  x.img\n", "x.img", "sha512") is None
    conflicting = f"{'a' * 64}  x.img\n{'b' * 64}  ./x.img\n"
    assert pull.parse_checksums(conflicting, "x.img", "sha256") is None


def test_mirror_replaces_scheme_host_and_prefixes_path() -> None:
    assert pull.mirrored("https://a.example/x/y.img?z=1", "http://m.lan:8080/holos/") == (
        "http://m.lan:8080/holos/x/y.img?z=1"
    )
    assert pull.mirrored("https://a.example/x", "") == "https://a.example/x"
    with pytest.raises(FetchError, match="HOLOSC_IMAGE_MIRROR"):
        pull.mirrored("https://a.example/x", "mirror.lan")


def test_unknown_and_local_refs_are_usage_errors(tmp_path: Path, site: Site) -> None:
    with pytest.raises(UnknownImageError, match='unknown image "ubuntu" \\(tag "latest"\\)'):
        pull.entry_for("ubuntu:latest")
    result = holosc(tmp_path, site, "pull", "gentoo")
    assert result.returncode == 2
    assert 'unknown image "gentoo"' in result.stderr
    assert holosc(tmp_path, site, "pull", "./disk.qcow2").returncode == 2


# -- pulling -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("ref", "layout"),
    [("alpine:3.21", "bsd"), ("debian:12", "gnu"), ("ubuntu:noble", "gnu-star"), ("fedora", "bsd")],
)
def test_pull_caches_verified_image(
    tmp_path: Path, site: Site, qcow2: bytes, ref: str, layout: str
) -> None:
    entry = pull.entry_for(ref)
    sums = bsd(entry, qcow2) if layout == "bsd" else gnu(entry, qcow2, star=layout != "gnu")
    publish(site, entry, qcow2, sums)

    result = holosc(tmp_path, site, "pull", ref)

    assert result.returncode == 0, result.stderr
    path = tmp_path / "images" / "blobs" / entry.algorithm / digest(entry, qcow2)
    assert result.stdout == f"image: {path}\nformat: qcow2\n"
    assert path.read_bytes() == qcow2
    assert cache_listing(tmp_path) == blob_files(entry, qcow2)
    record = pull.load_record(entry, tmp_path / "images")
    assert record is not None
    assert (record.algorithm, record.hash, record.size, record.url, record.format) == (
        entry.algorithm,
        digest(entry, qcow2),
        len(qcow2),
        entry.url,
        "qcow2",
    )

    listing = holosc(tmp_path, site, "images").stdout.splitlines()
    assert listing[0].split() == ["IMAGE", "DIGEST", "SIZE", "PULLED", "USED", "BY"]
    row = listing[1].split()
    assert row[:4] == [entry.ref, record.short, f"{len(qcow2) / 2**20:.1f}", "MiB"]
    assert row[-1] == "-"
    catalogue = holosc(tmp_path, site, "images", "--available").stdout.splitlines()
    assert catalogue[0].split() == ["NAME", "TAG", "DEFAULT", "FORMAT", "OS", "USER"]

    verified = holosc(tmp_path, site, "verify", ref)
    assert verified.returncode == 0, verified.stderr
    assert f"verified {entry.algorithm}:{digest(entry, qcow2)[:16]}" in verified.stdout


def test_the_cache_is_private_whatever_the_umask(tmp_path: Path, site: Site, qcow2: bytes) -> None:
    """Images hold whatever their guests or Dockerfiles put there: a pull under the usual
    umask 022 leaves directories 0700 and files 0600, and makes an older cache private."""
    (tmp_path / "images" / "blobs").mkdir(parents=True, mode=0o755)  # an older holosc's
    publish(site, UBUNTU, qcow2, gnu(UBUNTU, qcow2))
    umask = os.umask(0o022)
    try:
        pulled = holosc(tmp_path, site, "pull", "ubuntu:noble")
    finally:
        os.umask(umask)
    assert pulled.returncode == 0, pulled.stderr
    assert not_private(tmp_path / "images") == {}
    assert len(cache_listing(tmp_path)) == 3


def test_cached_image_is_reused_without_downloading(
    tmp_path: Path, site: Site, qcow2: bytes
) -> None:
    publish(site, UBUNTU, qcow2, gnu(UBUNTU, qcow2))
    assert holosc(tmp_path, site, "pull", "ubuntu:noble").returncode == 0

    again = holosc(tmp_path, site, "pull", "ubuntu:noble")

    assert again.returncode == 0, again.stderr
    assert "up to date" in again.stderr
    assert site.hits[urllib.parse.urlsplit(UBUNTU.url).path] == 1


def test_upstream_change_moves_the_tag_and_keeps_the_old_file(
    tmp_path: Path, site: Site, qcow2: bytes
) -> None:
    publish(site, UBUNTU, qcow2, gnu(UBUNTU, qcow2))
    assert holosc(tmp_path, site, "pull", "ubuntu:noble").returncode == 0
    old = tmp_path / "images" / "blobs" / "sha256" / digest(UBUNTU, qcow2)
    inode = old.stat().st_ino
    newer = qcow2 + b"\0" * 512
    publish(site, UBUNTU, newer, gnu(UBUNTU, newer))

    result = holosc(tmp_path, site, "pull", "ubuntu:noble")

    assert result.returncode == 0, result.stderr
    assert old.read_bytes() == qcow2 and old.stat().st_ino == inode, "never rewritten"
    assert pull.image_path(UBUNTU, tmp_path / "images").read_bytes() == newer
    assert cache_listing(tmp_path) == sorted(
        [*blob_files(UBUNTU, qcow2)[:2], *blob_files(UBUNTU, newer)]
    )
    assert holosc(tmp_path, site, "verify", "ubuntu:noble").returncode == 0


def test_redirects_are_followed(tmp_path: Path, site: Site, qcow2: bytes) -> None:
    """download.fedoraproject.org answers with a redirect to a mirror."""
    publish(site, FEDORA, qcow2, bsd(FEDORA, qcow2))
    site.routes["/elsewhere/image.qcow2"] = site.routes[urllib.parse.urlsplit(FEDORA.url).path]
    site.serve(FEDORA.url, Route(b"", location=f"{site.url}/elsewhere/image.qcow2"))

    result = holosc(tmp_path, site, "pull", "fedora")

    assert result.returncode == 0, result.stderr
    assert pull.image_path(FEDORA, tmp_path / "images").read_bytes() == qcow2


def test_checksum_mismatch_caches_nothing(tmp_path: Path, site: Site, qcow2: bytes) -> None:
    publish(site, DEBIAN, qcow2, gnu(DEBIAN, qcow2 + b"tampered"))

    result = holosc(tmp_path, site, "pull", "debian:12")

    assert result.returncode == 5
    assert "sha512 mismatch for" in result.stderr
    assert len(result.stderr.strip().splitlines()) <= 3
    assert cache_listing(tmp_path) == []


def test_stalled_download_times_out_and_caches_nothing(
    tmp_path: Path, site: Site, qcow2: bytes
) -> None:
    publish(site, ALPINE, qcow2, bsd(ALPINE, qcow2))
    site.serve(ALPINE.url, Route(qcow2, stall_at=len(qcow2) // 2))

    started = time.monotonic()
    result = holosc(tmp_path, site, "pull", "alpine", "--stall-timeout", "1")

    assert result.returncode == 5
    assert "download stalled (no data for 1 s)" in result.stderr
    assert time.monotonic() - started < 15
    assert cache_listing(tmp_path) == []


def test_http_404_is_one_clear_error(tmp_path: Path, site: Site, qcow2: bytes) -> None:
    site.serve(FEDORA.checksum_url, Route(bsd(FEDORA, qcow2)))

    result = holosc(tmp_path, site, "pull", "fedora:43")

    assert result.returncode == 5
    path = urllib.parse.urlsplit(FEDORA.url).path
    assert f"holosc: error: HTTP 404 from {site.url}{path}\n" in result.stderr
    assert cache_listing(tmp_path) == []


def test_missing_checksum_file_is_an_error(tmp_path: Path, site: Site, qcow2: bytes) -> None:
    site.serve(FEDORA.url, Route(qcow2))
    result = holosc(tmp_path, site, "pull", "fedora:43")
    assert result.returncode == 5
    assert "HTTP 404 from" in result.stderr
    assert site.hits[urllib.parse.urlsplit(FEDORA.url).path] == 0


def test_concurrent_pulls_download_once(tmp_path: Path, site: Site, qcow2: bytes) -> None:
    publish(site, UBUNTU, qcow2, gnu(UBUNTU, qcow2))
    site.serve(UBUNTU.url, Route(qcow2, chunk_delay=0.005))  # ~0.3 s each: they overlap
    env = {k: v for k, v in os.environ.items() if k not in PROXY_VARS}
    env |= {"HOLOSC_STATE_DIR": str(tmp_path), pull.MIRROR_ENV: site.url}
    argv = [sys.executable, "-m", "holosc", "pull", "ubuntu:noble"]

    procs = [subprocess.Popen(argv, env=env, stderr=subprocess.PIPE, text=True) for _ in "ab"]
    results = [(proc.wait(timeout=60), proc.communicate()[1]) for proc in procs]

    assert [code for code, _ in results] == [0, 0], results
    assert site.hits[urllib.parse.urlsplit(UBUNTU.url).path] == 1
    assert cache_listing(tmp_path) == blob_files(UBUNTU, qcow2)
    assert pull.image_path(UBUNTU, tmp_path / "images").read_bytes() == qcow2
    assert holosc(tmp_path, site, "verify", "--all").returncode == 0


def test_two_projects_image_units_share_one_download(
    tmp_path: Path, site: Site, qcow2: bytes
) -> None:
    """Two projects' image units, one on ubuntu:noble and one on ubuntu:24.04 (the same
    upstream file), started at once: one download, one blob, both tags."""
    publish(site, UBUNTU, qcow2, gnu(UBUNTU, qcow2))
    site.serve(UBUNTU.url, Route(qcow2, chunk_delay=0.005))  # ~0.3 s each: they overlap
    cache = tmp_path / "images"
    units = []
    for ref in ("ubuntu:noble", "ubuntu:24.04"):
        entry = pull.entry_for(ref)
        units.append(
            [HELPER, "ensure", "--ref", ref, "--algorithm", entry.algorithm,
             "--url", entry.url, "--checksum-url", entry.checksum_url,
             "--cache", str(cache), "--mirror", site.url]
        )  # fmt: skip
    procs = [subprocess.Popen(argv, stderr=subprocess.PIPE, text=True) for argv in units]
    results = [(proc.wait(timeout=60), proc.communicate()[1]) for proc in procs]

    assert [code for code, _ in results] == [0, 0], results
    assert site.hits[urllib.parse.urlsplit(UBUNTU.url).path] == 1
    assert sum("downloading" in err for _, err in results) == 1, results
    blob = f"blobs/sha256/{digest(UBUNTU, qcow2)}"
    assert cache_listing(tmp_path) == [
        blob,
        f"{blob}.json",
        "tags/ubuntu/24.04",
        "tags/ubuntu/noble",
    ]
    assert (cache / blob).read_bytes() == qcow2


def test_interrupted_pull_leaves_no_partial_file(tmp_path: Path, site: Site, qcow2: bytes) -> None:
    publish(site, ALPINE, qcow2, bsd(ALPINE, qcow2))
    site.serve(ALPINE.url, Route(qcow2, stall_at=1 << 20))
    env = {k: v for k, v in os.environ.items() if k not in PROXY_VARS}
    env |= {"HOLOSC_STATE_DIR": str(tmp_path), pull.MIRROR_ENV: site.url}
    proc = subprocess.Popen(
        [sys.executable, "-m", "holosc", "pull", "alpine"], env=env, stderr=subprocess.PIPE
    )
    deadline = time.monotonic() + 20
    while not any("/.part." in name for name in cache_listing(tmp_path)):
        assert time.monotonic() < deadline, "the download never started"
        time.sleep(0.05)

    proc.send_signal(signal.SIGINT)

    assert proc.wait(timeout=90) == 130  # 0.3 s here; once over 20 s at load 10
    assert cache_listing(tmp_path) == []


def test_verify_detects_corruption_after_pull(tmp_path: Path, site: Site, qcow2: bytes) -> None:
    publish(site, ALPINE, qcow2, bsd(ALPINE, qcow2))
    assert holosc(tmp_path, site, "pull", "alpine:3.21").returncode == 0
    image = pull.image_path(ALPINE, tmp_path / "images")
    with image.open("r+b") as stream:
        stream.seek(len(qcow2) // 2)
        stream.write(b"\xff" * 16)

    result = holosc(tmp_path, site, "verify", "alpine:3.21")

    assert result.returncode == 1
    assert "alpine:3.21: CORRUPT" in result.stderr
    assert "sha512 mismatch" in result.stderr
    assert holosc(tmp_path, site, "verify", "--all").returncode == 1
    status = pull.verify(ALPINE, tmp_path / "images").status
    assert status is pull.VerifyStatus.MISMATCH


def test_verify_usage_and_uncached(tmp_path: Path, site: Site) -> None:
    assert holosc(tmp_path, site, "verify").returncode == 2
    assert holosc(tmp_path, site, "verify", "--all", "alpine").returncode == 2
    skipped = holosc(tmp_path, site, "verify", "--all")
    assert skipped.returncode == 0
    assert "alpine:3.21: skipped (not cached)" in skipped.stdout
    named = holosc(tmp_path, site, "verify", "alpine")
    assert named.returncode == 1
    assert "not cached" in named.stderr
    assert site.hits.total() == 0


# -- what `holosc up` calls --------------------------------------------------------------

PROJECT = """\
name: imgs
services:
  web:
    image: ubuntu:noble
  db:
    image: ubuntu:24.04
  local:
    image: ./disk.qcow2
"""


def test_ensure_images_pulls_only_missing(
    tmp_path: Path, site: Site, qcow2: bytes, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in PROXY_VARS:
        monkeypatch.delenv(name, raising=False)
    doc = load_text(PROJECT, directory=EXAMPLES, environ={})
    project = build_project(doc, HostFiles()).project
    publish(site, UBUNTU, qcow2, gnu(UBUNTU, qcow2))
    cache = tmp_path / "images"
    events: list[pull.Progress] = []

    missing = pull.missing_images(project, cache)
    assert sorted(entry.ref for entry in missing) == ["ubuntu:24.04", "ubuntu:noble"]
    paths = pull.ensure_images(project, cache, events.append, mirror=site.url)

    assert [p.name for p in paths] == [digest(UBUNTU, qcow2)] * 2  # one blob, two tags
    assert site.hits[urllib.parse.urlsplit(UBUNTU.url).path] == 1
    assert pull.missing_images(project, cache) == []
    assert pull.ensure_images(project, cache, mirror=site.url) == []
    assert {e.stage for e in events} == set(pull.Stage)  # ubuntu:24.04 reuses noble's blob
    assert all(pull.verify(entry, cache).ok for entry in missing)


# -- the cache under concurrent use, migration, local images ----------------------------

HELPER = str(Path(sys.executable).parent / "holos-image")


def overlay(state: Path, instance: str, *source: str) -> subprocess.CompletedProcess[str]:
    """`holos-image overlay` as launch.sh runs it, for instance p/<instance>."""
    disk = state / "instances" / "p" / instance / "root.qcow2"
    disk.parent.mkdir(parents=True, exist_ok=True)
    argv = [HELPER, "overlay", "--disk", str(disk), "--format", "qcow2", *source]
    return subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False)


def test_pull_while_overlays_are_created_and_prune_waits_for_them(
    tmp_path: Path, site: Site, qcow2: bytes
) -> None:
    qemu_img = require_tool("qemu-img")
    cache = tmp_path / "images"
    by_ref = ("--ref", "ubuntu:noble", "--images", str(cache))
    publish(site, UBUNTU, qcow2, gnu(UBUNTU, qcow2))
    assert holosc(tmp_path, site, "pull", "ubuntu:noble").returncode == 0
    raw = tmp_path / "newer.raw"
    raw.write_bytes(os.urandom(4 << 20))
    subprocess.run(
        [qemu_img, "convert", "-f", "raw", "-O", "qcow2", raw, raw.with_suffix(".qcow2")],
        check=True,
    )
    newer = raw.with_suffix(".qcow2").read_bytes()
    publish(site, UBUNTU, newer, gnu(UBUNTU, newer))
    site.serve(UBUNTU.url, Route(newer, chunk_delay=0.03))  # ~2 s
    env = {k: v for k, v in os.environ.items() if k not in PROXY_VARS}
    env |= {"HOLOSC_STATE_DIR": str(tmp_path), pull.MIRROR_ENV: site.url}
    puller = subprocess.Popen(
        [sys.executable, "-m", "holosc", "pull", "ubuntu:noble"], env=env, stderr=subprocess.PIPE
    )
    deadline = time.monotonic() + 20
    while not any("/.part." in name for name in cache_listing(tmp_path)):
        assert time.monotonic() < deadline, "the download never started"
        time.sleep(0.02)

    during = overlay(tmp_path, "a", *by_ref)  # does not wait for the download

    assert during.returncode == 0, during.stderr
    assert puller.poll() is None, "the overlay was created while the pull ran"
    assert puller.wait(timeout=60) == 0
    after = overlay(tmp_path, "b", *by_ref)
    assert after.returncode == 0, after.stderr
    disks = {i: tmp_path / "instances" / "p" / i / "root.qcow2" for i in "ab"}
    blobs = {
        "a": cache / "blobs" / "sha256" / digest(UBUNTU, qcow2),
        "b": cache / "blobs" / "sha256" / digest(UBUNTU, newer),
    }
    for i in "ab":
        assert backing_file(disks[i]) == f"../../../images/{blobs[i].relative_to(cache)}"
    compare = [qemu_img, "compare", "-F", "qcow2", str(disks["a"]), str(blobs["a"])]
    assert subprocess.run(compare, capture_output=True, check=False).returncode == 0
    assert blobs["a"].read_bytes() == qcow2 and blobs["b"].read_bytes() == newer
    assert site.hits[urllib.parse.urlsplit(UBUNTU.url).path] == 2

    # A prune waits while an overlay is being created (the shared lock), then keeps both.
    with Cache(cache).locked(shared=True):
        pruner = subprocess.Popen(
            [sys.executable, "-m", "holosc", "images", "prune", "--all"],
            env=env,
            stdout=subprocess.PIPE,
            text=True,
        )
        time.sleep(1.0)
        assert pruner.poll() is None, "prune did not wait for the lock"
    out, _ = pruner.communicate(timeout=60)
    assert pruner.returncode == 0
    assert f"kept sha256:{digest(UBUNTU, qcow2)[:12]}: used by p/a" in out, out
    assert f"kept sha256:{digest(UBUNTU, newer)[:12]}: used by p/b" in out, out
    assert all(blob.exists() for blob in blobs.values())


def test_old_layout_is_converted_once_without_downloading(
    tmp_path: Path, site: Site, qcow2: bytes
) -> None:
    qemu_io = require_tool("qemu-io")
    cache = tmp_path / "images"
    cache.mkdir()
    old = cache / "ubuntu-noble.qcow2"  # what the previous holosc pulled, with its sidecar
    old.write_bytes(qcow2)
    record = {"algorithm": "sha256", "hash": digest(UBUNTU, qcow2), "size": len(qcow2)}
    (cache / "ubuntu-noble.qcow2.json").write_text(json.dumps(record | {"url": UBUNTU.url}))
    (cache / "debian-12.qcow2").write_bytes(qcow2)  # placed by hand: no sidecar
    inode = old.stat().st_ino
    disk = tmp_path / "instances" / "p" / "old" / "root.qcow2"
    disk.parent.mkdir(parents=True)
    subprocess.run(
        [require_tool("qemu-img"), "create", "-q", "-f", "qcow2", "-F", "qcow2", "-b", old, disk],
        check=True,
    )
    subprocess.run([qemu_io, "-c", "write -P 0x5a 0 64k", disk], check=True, capture_output=True)
    publish(site, UBUNTU, qcow2, gnu(UBUNTU, qcow2))
    publish(site, DEBIAN, qcow2, gnu(DEBIAN, qcow2))

    listing = holosc(tmp_path, site, "images")

    assert listing.returncode == 0, listing.stderr
    blob = cache / "blobs" / "sha256" / digest(UBUNTU, qcow2)
    assert old.is_symlink() and old.resolve() == blob and blob.stat().st_ino == inode
    rows = [line.split() for line in listing.stdout.splitlines()[1:]]
    assert [(r[0], r[1], r[-1]) for r in rows] == [
        ("debian:12", f"sha512:{digest(DEBIAN, qcow2)[:12]}", "-"),
        ("ubuntu:noble", f"sha256:{digest(UBUNTU, qcow2)[:12]}", "p/old"),
    ]
    read = subprocess.run(
        [qemu_io, "-r", "-c", "read -P 0x5a 0 64k", disk], capture_output=True, text=True
    )
    assert "Pattern verification failed" not in read.stdout and read.returncode == 0
    again = holosc(tmp_path, site, "pull", "ubuntu:noble")
    assert again.returncode == 0 and "up to date" in again.stderr, again.stderr
    ensured = subprocess.run(
        [HELPER, "ensure", "--ref", "debian:12", "--algorithm", "sha512", "--url", DEBIAN.url,
         "--checksum-url", DEBIAN.checksum_url, "--cache", str(cache)],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert ensured.returncode == 0, ensured.stderr
    assert site.hits.total() == 1, site.hits  # the checksum file of the explicit pull only
    refused = holosc(tmp_path, site, "images", "rm", "ubuntu:noble")
    assert refused.returncode == 5 and "ubuntu:noble is used by p/old" in refused.stderr


def test_local_image_that_changed_is_refused(tmp_path: Path) -> None:
    image = tmp_path / "disk.qcow2"
    subprocess.run(
        [require_tool("qemu-img"), "create", "-q", "-f", "qcow2", str(image), "64M"], check=True
    )
    assert overlay(tmp_path, "a", "--file", str(image)).returncode == 0
    assert overlay(tmp_path, "a", "--file", str(image)).returncode == 0  # unchanged: starts

    os.utime(image, ns=(time.time_ns(), time.time_ns() + 10**9))  # written to
    touched = overlay(tmp_path, "a", "--file", str(image))
    assert touched.returncode == 1
    (line,) = touched.stderr.splitlines()
    assert line.startswith(f"holos-image: image {image} changed since ") and "mtime_ns" in line

    copy = tmp_path / "copy.qcow2"
    shutil.copy2(image, copy)
    stamp = tmp_path / "instances" / "p" / "a" / "root.qcow2.base"
    stamp.unlink()  # trust the current file again (as for an overlay made before stamps)
    assert overlay(tmp_path, "a", "--file", str(image)).returncode == 0
    os.replace(copy, image)  # replaced by a file with the same bytes and times
    replaced = overlay(tmp_path, "a", "--file", str(image))
    assert replaced.returncode == 1 and "inode" in replaced.stderr
    assert "mtime_ns" not in replaced.stderr and "size" not in replaced.stderr.split("(")[1]


def test_recreate_finds_disks_whose_image_moved_on(
    tmp_path: Path, site: Site, qcow2: bytes
) -> None:
    """`up --recreate` picks the overlays on a tag's old digest and on a changed local
    image, and nothing else; after removal the next overlay is on the new base."""
    local = tmp_path / "disk.qcow2"
    local.write_bytes(qcow2)
    text = "name: p\nservices:\n  a:\n    image: ubuntu:noble\n  b:\n    image: ./disk.qcow2\n"
    project = build_project(load_text(text, directory=tmp_path, environ={}), HostFiles()).project
    cache = tmp_path / "images"
    by_ref = ("--ref", "ubuntu:noble", "--images", str(cache))
    publish(site, UBUNTU, qcow2, gnu(UBUNTU, qcow2))
    assert holosc(tmp_path, site, "pull", "ubuntu:noble").returncode == 0
    assert overlay(tmp_path, "a-0", *by_ref).returncode == 0
    assert overlay(tmp_path, "b-0", "--file", str(local)).returncode == 0
    assert recreate.stale_disks(project, tmp_path, tmp_path) == []

    newer = qcow2 + b"\0" * 4096
    publish(site, UBUNTU, newer, gnu(UBUNTU, newer))
    assert holosc(tmp_path, site, "pull", "ubuntu:noble").returncode == 0
    os.utime(local, ns=(time.time_ns(), time.time_ns() + 10**9))
    stale = recreate.stale_disks(project, tmp_path, tmp_path)

    old, new = digest(UBUNTU, qcow2)[:12], digest(UBUNTU, newer)[:12]
    assert [s.instance for s in stale] == ["a-0", "b-0"]
    assert stale[0].reason == f"ubuntu:noble moved from sha256:{old} to sha256:{new}"
    assert stale[1].reason.startswith(f"{local} changed (mtime_ns ")
    for disk in stale:
        recreate.remove(disk)
    assert overlay(tmp_path, "a-0", *by_ref).returncode == 0
    assert overlay(tmp_path, "b-0", "--file", str(local)).returncode == 0
    a0 = tmp_path / "instances" / "p" / "a-0" / "root.qcow2"
    assert Cache(cache).digest_of(a0) == f"sha256:{digest(UBUNTU, newer)}"
    assert recreate.stale_disks(project, tmp_path, tmp_path) == []
