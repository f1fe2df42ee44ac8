"""Download a registry image into the cache, verified against its upstream checksum file.

Used by the `holos-image` helper (an image unit on a fresh host) and by `holosc pull`;
standard library only. It never prints: callers watch through the `progress` callback.

  * The upstream checksum file is fetched first; the image is streamed into a private
    temporary file (`blobs/<alg>/.part.<random>`, O_EXCL), hashed while it arrives,
    fsync'ed, and committed as `blobs/<alg>/<hex>` only when the hash matches and the
    image is self-contained: a qcow2 header naming a backing or data file (a host path
    QEMU would put inside the guest's disk) is refused, whoever signed its checksum. Any
    failure (HTTP error, stall, mismatch, full disk, Ctrl-C) removes the temporary file:
    nothing half-written stays.
  * One download per upstream URL at a time (imagecache.Cache.download_lock): a second
    pull of the same image waits, then finds the digest cached and only moves the tag.

Mirrors: HOLOSC_IMAGE_MIRROR (or the `mirror` argument) replaces the scheme and host of
every registry URL, keeping the path: `http://mirror.lan/holos` turns
`https://cloud-images.ubuntu.com/noble/...` into `http://mirror.lan/holos/noble/...`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import enum
import hashlib
import http.client
import os
import re
import shutil
import ssl
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path, PurePosixPath
from typing import Any

from holos_runtime import qcow2
from holos_runtime.imagecache import Cache, Record, now

MIRROR_ENV = "HOLOSC_IMAGE_MIRROR"
USER_AGENT = "holosc/image-pull"
CHECKSUM_LIMIT = 1 << 20  # upstream SHA*SUMS files are a few KiB; refuse anything absurd
CHUNK = 1 << 20
HEX_LENGTH = {"sha256": 64, "sha512": 128}
_HEX = re.compile(r"[0-9a-fA-F]+")


class FetchError(Exception):
    """A download that cannot complete; the message is one line for a person."""


@dataclasses.dataclass(frozen=True, slots=True)
class Source:
    """Where a registry image comes from, as the compiled image unit names it."""

    ref: str  # name:tag
    url: str
    checksum_url: str
    algorithm: str
    format: str = "qcow2"


@dataclasses.dataclass(frozen=True, slots=True)
class Timeouts:
    """Seconds: `connect` covers connect, TLS and response headers; `stall` is the longest
    time the body may deliver no bytes at all."""

    connect: float = 30.0
    stall: float = 60.0


class Stage(enum.StrEnum):
    CHECKSUM = "checksum"  # fetching the upstream checksum file
    REUSED = "reused"  # the cache already holds the upstream image
    DOWNLOAD = "download"  # bytes arriving; `done` of `total`
    DONE = "done"  # verified and committed


@dataclasses.dataclass(frozen=True, slots=True)
class Progress:
    image: Source
    stage: Stage
    done: int = 0
    total: int | None = None
    url: str = ""


ProgressFn = Callable[[Progress], None]


# -- checksums ---------------------------------------------------------------------------


def parse_checksums(text: str, file_name: str, algorithm: str) -> str | None:
    """The hash for `file_name` in a GNU (`HASH  file`, `HASH *file`) or BSD
    (`SHA256 (file) = HASH`) checksum file; else the file's only hash; else None.

    Fedora's CHECKSUM wraps the lines in a PGP signature and Alpine's `.sha512` may
    hold the bare hash, so lines without a hash of the right length are skipped.
    """
    length = HEX_LENGTH[algorithm]
    named: set[str] = set()
    every: set[str] = set()
    for line in text.splitlines():
        fields = [field.strip("()*=") for field in line.split()]
        hashes = [f.lower() for f in fields if len(f) == length and _HEX.fullmatch(f)]
        if not hashes:
            continue
        every.update(hashes)
        if any(PurePosixPath(field).name == file_name for field in fields if field):
            named.update(hashes)
    if len(named) == 1:
        return named.pop()
    if not named and len(every) == 1:
        return every.pop()
    return None


def file_name(url: str) -> str:
    return PurePosixPath(urllib.parse.urlsplit(url).path).name


def fetch_expected(source: Source, client: Client, url: str) -> str:
    """The upstream hash of the image, read from its checksum file.

    :raises FetchError: on HTTP errors, an oversized file or a file without the hash.
    """
    with client.open(url) as response:
        body = client.read(response, CHECKSUM_LIMIT + 1, url)
    if len(body) > CHECKSUM_LIMIT:
        raise FetchError(f"checksum file {url} is larger than {CHECKSUM_LIMIT // 1024} KiB")
    name = file_name(source.url)
    expected = parse_checksums(body.decode("utf-8", "replace"), name, source.algorithm)
    if expected is None:
        raise FetchError(f"no {source.algorithm} checksum for {name} in {url}")
    return expected


# -- HTTP --------------------------------------------------------------------------------


def mirrored(url: str, mirror: str | None) -> str:
    """`url` with its scheme and host (and a path prefix) taken from `mirror`."""
    if not mirror:
        return url
    base = urllib.parse.urlsplit(mirror)
    if not base.scheme or not base.netloc:
        raise FetchError(f"{MIRROR_ENV}: {mirror!r} is not a URL like http://host[:port][/path]")
    parts = urllib.parse.urlsplit(url)
    path = base.path.rstrip("/") + parts.path
    return urllib.parse.urlunsplit((base.scheme, base.netloc, path, parts.query, ""))


def _stall_after_headers(base: type[http.client.HTTPConnection], stall: float) -> Any:
    """A connection class whose socket timeout becomes `stall` once headers arrived.

    urllib applies one socket timeout to everything; the body needs its own, longer idle
    limit, and HTTPHandler.do_open is the documented place to choose the connection class.
    """

    class Connection(base):  # type: ignore[valid-type,misc]
        def getresponse(self) -> http.client.HTTPResponse:
            # Taken before: on "Connection: close" getresponse() hands the socket to the
            # response and sets self.sock to None; the response's reader still uses it.
            sock = self.sock
            response: http.client.HTTPResponse = super().getresponse()
            if sock is not None:
                sock.settimeout(stall)
            return response

    return Connection


class _HTTPHandler(urllib.request.HTTPHandler):
    def __init__(self, stall: float) -> None:
        super().__init__()
        self._connection = _stall_after_headers(http.client.HTTPConnection, stall)

    def http_open(self, req: urllib.request.Request) -> http.client.HTTPResponse:
        return self.do_open(self._connection, req)


class _HTTPSHandler(urllib.request.HTTPSHandler):
    def __init__(self, stall: float) -> None:
        self._tls = ssl.create_default_context()
        super().__init__(context=self._tls)
        self._connection = _stall_after_headers(http.client.HTTPSConnection, stall)

    def https_open(self, req: urllib.request.Request) -> http.client.HTTPResponse:
        return self.do_open(self._connection, req, context=self._tls)


class Client:
    """urllib with its usual redirects and proxies, plus the body stall timeout."""

    def __init__(self, timeouts: Timeouts) -> None:
        self.timeouts = timeouts
        self._opener = urllib.request.build_opener(
            _HTTPHandler(timeouts.stall), _HTTPSHandler(timeouts.stall)
        )
        self._opener.addheaders = [("User-Agent", USER_AGENT)]

    @contextlib.contextmanager
    def open(self, url: str) -> Iterator[http.client.HTTPResponse]:
        """A 200 response for `url`.

        :raises FetchError: on any other status, or when the host cannot be reached.
        """
        try:
            response = self._opener.open(url, timeout=self.timeouts.connect)
        except urllib.error.HTTPError as exc:
            exc.close()
            raise FetchError(f"HTTP {exc.code} from {url}") from exc
        except urllib.error.URLError as exc:
            raise FetchError(f"cannot fetch {url}: {exc.reason}") from exc
        except (OSError, http.client.HTTPException) as exc:
            raise FetchError(f"cannot fetch {url}: {exc or type(exc).__name__}") from exc
        with response:
            if response.status != 200:
                raise FetchError(f"HTTP {response.status} from {url}")
            yield response

    def read(
        self, response: http.client.HTTPResponse, size: int, url: str, *, whole: bool = True
    ) -> bytes:
        """`size` bytes of the body (fewer at its end; b"" after it); with `whole=False`,
        whatever one receive returns, so progress moves on slow links too.

        :raises FetchError: when the server sends nothing for the stall timeout.
        """
        try:
            return response.read(size) if whole else response.read1(size)
        except TimeoutError as exc:
            stall = f"{self.timeouts.stall:g} s"
            raise FetchError(f"download stalled (no data for {stall}): {url}") from exc
        except (OSError, http.client.HTTPException) as exc:
            raise FetchError(f"download of {url} failed: {exc or type(exc).__name__}") from exc


# -- pull --------------------------------------------------------------------------------


def pull(
    source: Source,
    cache: Cache,
    *,
    progress: ProgressFn | None = None,
    timeouts: Timeouts | None = None,
    mirror: str | None = None,
) -> Record:
    """Make `source.ref` point at the current upstream image, downloading it unless a blob
    with the upstream hash is cached. Existing blobs, and overlays on them, stay as they are.

    :raises FetchError: on HTTP errors, stalls, checksum mismatches or a full disk; the
        cache is left as it was.
    """
    timeouts = timeouts or Timeouts()
    mirror = mirror if mirror is not None else os.environ.get(MIRROR_ENV)
    notify = progress or (lambda _: None)
    client = Client(timeouts)
    _create(cache)
    cache.remove_stale_parts()
    with cache.download_lock(source.url):
        checksum_url = mirrored(source.checksum_url, mirror)
        notify(Progress(source, Stage.CHECKSUM, url=checksum_url))
        expected = fetch_expected(source, client, checksum_url)
        with cache.locked(shared=True):  # a prune cannot take the blob meanwhile
            record = cache.record(f"{source.algorithm}:{expected}")
            if record is not None and cache.resolve(source.ref) != record:
                cache.set_tag(source.ref, record.digest)
        if record is not None:
            notify(Progress(source, Stage.REUSED, record.size, record.size))
            return record
        url = mirrored(source.url, mirror)
        record = _download(source, cache, client, url, expected, notify)
    notify(Progress(source, Stage.DONE, record.size, record.size, url))
    return record


def ensure(
    source: Source,
    cache: Cache,
    *,
    progress: ProgressFn | None = None,
    timeouts: Timeouts | None = None,
    mirror: str | None = None,
) -> Record:
    """The tagged blob when the cache has it (no network at all), else `pull`."""
    record = cache.resolve(source.ref)
    if record is not None:
        return record
    _create(cache)
    with cache.download_lock(source.url):  # a pull in flight finishes first
        record = cache.resolve(source.ref)
    if record is not None:
        return record
    return pull(source, cache, progress=progress, timeouts=timeouts, mirror=mirror)


def _create(cache: Cache) -> None:
    try:
        cache.create()
    except OSError as exc:
        raise FetchError(f"cannot create the image cache {cache.root}: {exc.strerror}") from exc


def _download(
    source: Source, cache: Cache, client: Client, url: str, expected: str, notify: ProgressFn
) -> Record:
    with client.open(url) as response:
        total = _content_length(response)
        part = cache.part(source.algorithm)
        try:
            _check_space(part.parent, total)
            size, actual = _stream(source, client, response, part, url, notify)
            if actual != expected:
                raise FetchError(
                    f"{source.algorithm} mismatch for {url}: expected {expected}, got {actual}"
                )
            record = Record(source.algorithm, actual, size, source.url, source.format, now())
            cache.commit(part, record, source.ref)
        except qcow2.UnsafeImage as exc:
            raise FetchError(
                f"refused {url}: {exc} (an image from a registry or mirror must be "
                "self-contained; nothing was cached)"
            ) from None
        except OSError as exc:  # ENOSPC, EDQUOT, EACCES: say which file, not a traceback
            raise FetchError(f"cannot write {part.parent}: {exc.strerror or exc}") from exc
        finally:
            part.unlink(missing_ok=True)
    return record


def _stream(
    source: Source,
    client: Client,
    response: http.client.HTTPResponse,
    part: Path,
    url: str,
    notify: ProgressFn,
) -> tuple[int, str]:
    total = _content_length(response)
    digest = hashlib.new(source.algorithm)
    done = 0
    # O_EXCL: the random name is ours alone; never follow or reuse someone else's file.
    fd = os.open(part, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with open(fd, "wb") as out:
        notify(Progress(source, Stage.DOWNLOAD, 0, total, url))
        while chunk := client.read(response, CHUNK, url, whole=False):
            out.write(chunk)
            digest.update(chunk)
            done += len(chunk)
            notify(Progress(source, Stage.DOWNLOAD, done, total, url))
        if total is not None and done != total:
            raise FetchError(f"download of {url} ended after {done} of {total} bytes")
        out.flush()
        os.fsync(out.fileno())
    return done, digest.hexdigest()


def _content_length(response: http.client.HTTPResponse) -> int | None:
    value = response.headers.get("Content-Length")
    return int(value) if value and value.isdigit() else None


def _check_space(directory: Path, total: int | None) -> None:
    free = shutil.disk_usage(directory).free
    if total is not None and total > free:
        raise FetchError(
            f"not enough space in {directory}: the image needs {total // 2**20} MiB, "
            f"{free // 2**20} MiB free"
        )
