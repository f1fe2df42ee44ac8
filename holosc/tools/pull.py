"""Registry images in the local cache: download, verify against upstream checksums, check.

This module owns the image cache (`<state>/images/`): the files the compiled launch scripts
use as backing images, and one JSON sidecar per image recording the verified checksum.
It never prints; callers watch a download through the `progress` callback. It is only
used by commands (`pull`, `verify`, `images`, `up`), never by the compiler: `holosc build`
stays offline.

Cache invariants:
  * A file named `<name>-<tag>.<format>` is complete. Downloads go to a private temporary
    file `.<cache_file>.part.<random>` in the same directory, are hashed while streaming,
    fsync'ed and renamed into place only after the checksum matched. Any failure (HTTP
    error, stall, mismatch, Ctrl-C) removes the temporary file.
  * Concurrent pulls of one image each use their own temporary file; both verify the same
    upstream hash, so whichever rename comes last leaves an identical, good file. No lock.
  * `<cache_file>.json` records algorithm, hash, size and upstream URL. It is written after
    the image (atomically too), so an image without a sidecar is complete but unrecorded.

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
import json
import os
import re
import secrets
import shutil
import ssl
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path, PurePosixPath
from typing import Any

from holosc.core import images
from holosc.core.images import RegistryImage
from holosc.core.model import Project
from holosc.errors import ImageError, UnknownImageError

MIRROR_ENV = "HOLOSC_IMAGE_MIRROR"
USER_AGENT = "holosc/image-pull"
CHECKSUM_LIMIT = 1 << 20  # upstream SHA*SUMS files are a few KiB; refuse anything absurd
CHUNK = 1 << 20
STALE_PART_AGE = 24 * 3600  # a live download writes at least once per stall timeout
HEX_LENGTH = {"sha256": 64, "sha512": 128}
_HEX = re.compile(r"[0-9a-fA-F]+")


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
    DONE = "done"  # verified and renamed into place


@dataclasses.dataclass(frozen=True, slots=True)
class Progress:
    entry: RegistryImage
    stage: Stage
    done: int = 0
    total: int | None = None
    url: str = ""


ProgressFn = Callable[[Progress], None]


@dataclasses.dataclass(frozen=True, slots=True)
class Record:
    """The sidecar: what was verified when the image entered the cache."""

    algorithm: str
    hash: str
    size: int
    url: str

    def matches(self, entry: RegistryImage, path: Path) -> bool:
        """Same upstream file, same algorithm, and the file still has the recorded size."""
        try:
            size = path.stat().st_size
        except FileNotFoundError:
            return False
        return (self.url, self.algorithm, self.size) == (entry.url, entry.algorithm, size)


class VerifyStatus(enum.StrEnum):
    OK = "ok"
    MISMATCH = "mismatch"
    NOT_CACHED = "not cached"
    UNRECORDED = "unrecorded"  # the file exists but no checksum was recorded for it


@dataclasses.dataclass(frozen=True, slots=True)
class VerifyResult:
    entry: RegistryImage
    status: VerifyStatus
    path: Path
    algorithm: str = ""
    expected: str = ""
    actual: str = ""
    detail: str = ""

    @property
    def ok(self) -> bool:
        return self.status is VerifyStatus.OK


# -- references and cache paths ----------------------------------------------------------


def entry_for(ref: str) -> RegistryImage:
    """The registry entry for `name` or `name:tag`.

    :raises UnknownImageError: for a local path or an unknown name or tag.
    """
    if images.is_local_ref(ref):
        raise UnknownImageError(f"{ref!r} is a local image path, not a registry image")
    name, _, tag = ref.rpartition(":") if ":" in ref else (ref, "", "")
    entry = images.lookup(f"{name}:{tag}" if tag else name)
    if entry is None:
        what = f'"{name}" (tag "{tag}")' if tag else f'"{name}"'
        raise UnknownImageError(
            f"unknown image {what}; run 'holosc images' to list available images"
        )
    return entry


def image_path(entry: RegistryImage, cache_dir: Path) -> Path:
    return cache_dir / entry.cache_file


def record_path(entry: RegistryImage, cache_dir: Path) -> Path:
    return cache_dir / f"{entry.cache_file}.json"


def load_record(entry: RegistryImage, cache_dir: Path) -> Record | None:
    """The sidecar of a cached image, or None when absent or unreadable."""
    try:
        raw = json.loads(record_path(entry, cache_dir).read_text())
        return Record(str(raw["algorithm"]), str(raw["hash"]), int(raw["size"]), str(raw["url"]))
    except (OSError, ValueError, KeyError, TypeError):
        return None


def missing_images(project: Project, cache_dir: Path) -> list[RegistryImage]:
    """Registry images the project's services use that have no file in the cache.

    A file without a sidecar counts as present: it may be in use as a backing file, and
    images placed by hand (offline hosts, tests) must not be replaced behind the user.
    """
    missing: list[RegistryImage] = []
    for service in project.services:
        image = service.image
        if not image.is_registry:
            continue
        entry = entry_for(f"{image.name}:{image.tag}")
        if entry not in missing and not image_path(entry, cache_dir).exists():
            missing.append(entry)
    return missing


def ensure_images(
    project: Project,
    cache_dir: Path,
    progress: ProgressFn | None = None,
    *,
    timeouts: Timeouts | None = None,
    mirror: str | None = None,
) -> list[Path]:
    """Pull every registry image the project needs that is not cached yet.

    :raises ImageError: when a download fails; images pulled before it stay cached.
    """
    return [
        pull(entry, cache_dir, progress=progress, timeouts=timeouts, mirror=mirror)
        for entry in missing_images(project, cache_dir)
    ]


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


def _file_name(url: str) -> str:
    return PurePosixPath(urllib.parse.urlsplit(url).path).name


def fetch_expected(entry: RegistryImage, client: Client, url: str) -> str:
    """The upstream hash of the entry's image, read from its checksum file.

    :raises ImageError: on HTTP errors, an oversized file or a file without the hash.
    """
    with client.open(url) as response:
        body = client.read(response, CHECKSUM_LIMIT + 1, url)
    if len(body) > CHECKSUM_LIMIT:
        raise ImageError(f"checksum file {url} is larger than {CHECKSUM_LIMIT // 1024} KiB")
    expected = parse_checksums(
        body.decode("utf-8", "replace"), _file_name(entry.url), entry.algorithm
    )
    if expected is None:
        raise ImageError(f"no {entry.algorithm} checksum for {_file_name(entry.url)} in {url}")
    return expected


# -- HTTP --------------------------------------------------------------------------------


def mirrored(url: str, mirror: str | None) -> str:
    """`url` with its scheme and host (and a path prefix) taken from `mirror`."""
    if not mirror:
        return url
    base = urllib.parse.urlsplit(mirror)
    if not base.scheme or not base.netloc:
        raise ImageError(f"{MIRROR_ENV}: {mirror!r} is not a URL like http://host[:port][/path]")
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

        :raises ImageError: on any other status, or when the host cannot be reached.
        """
        try:
            response = self._opener.open(url, timeout=self.timeouts.connect)
        except urllib.error.HTTPError as exc:
            exc.close()
            raise ImageError(f"HTTP {exc.code} from {url}") from exc
        except urllib.error.URLError as exc:
            raise ImageError(f"cannot fetch {url}: {exc.reason}") from exc
        except (OSError, http.client.HTTPException) as exc:
            raise ImageError(f"cannot fetch {url}: {exc or type(exc).__name__}") from exc
        with response:
            if response.status != 200:
                raise ImageError(f"HTTP {response.status} from {url}")
            yield response

    def read(
        self, response: http.client.HTTPResponse, size: int, url: str, *, whole: bool = True
    ) -> bytes:
        """`size` bytes of the body (fewer at its end; b"" after it); with `whole=False`,
        whatever one receive returns, so progress moves on slow links too.

        :raises ImageError: when the server sends nothing for the stall timeout.
        """
        try:
            return response.read(size) if whole else response.read1(size)
        except TimeoutError as exc:
            stall = f"{self.timeouts.stall:g} s"
            raise ImageError(f"download stalled (no data for {stall}): {url}") from exc
        except (OSError, http.client.HTTPException) as exc:
            raise ImageError(f"download of {url} failed: {exc or type(exc).__name__}") from exc


# -- pull --------------------------------------------------------------------------------


def pull(
    entry: RegistryImage,
    cache_dir: Path,
    *,
    progress: ProgressFn | None = None,
    timeouts: Timeouts | None = None,
    mirror: str | None = None,
) -> Path:
    """Download `entry` into `cache_dir` unless the cache already holds the upstream file.

    The upstream checksum file is always fetched: a cached image is reused only when its
    sidecar records that same hash (and the file still has its size); otherwise the image
    is downloaded, verified and atomically replaces the old file. `mirror` defaults to
    $HOLOSC_IMAGE_MIRROR.

    :raises ImageError: on HTTP errors, stalls, checksum mismatches or a full disk; the
        cache is left as it was.
    """
    timeouts = timeouts or Timeouts()
    mirror = mirror if mirror is not None else os.environ.get(MIRROR_ENV)
    notify = progress or (lambda _: None)
    client = Client(timeouts)
    try:
        cache_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ImageError(f"cannot create the image cache {cache_dir}: {exc.strerror}") from exc
    _remove_stale_parts(entry, cache_dir)
    checksum_url = mirrored(entry.checksum_url, mirror)
    notify(Progress(entry, Stage.CHECKSUM, url=checksum_url))
    expected = fetch_expected(entry, client, checksum_url)
    target = image_path(entry, cache_dir)
    record = load_record(entry, cache_dir)
    if record is not None and record.matches(entry, target) and record.hash == expected:
        notify(Progress(entry, Stage.REUSED, record.size, record.size))
        return target
    url = mirrored(entry.url, mirror)
    size = _download(entry, client, url, expected, target, notify)
    _write_record(entry, cache_dir, Record(entry.algorithm, expected, size, entry.url))
    notify(Progress(entry, Stage.DONE, size, size, url))
    return target


def _download(
    entry: RegistryImage,
    client: Client,
    url: str,
    expected: str,
    target: Path,
    notify: ProgressFn,
) -> int:
    """Stream `url` into a private temporary file, verify, and rename it to `target`."""
    with client.open(url) as response:
        total = _content_length(response)
        _check_space(target.parent, total)
        part = target.parent / f".{target.name}.part.{secrets.token_hex(8)}"
        try:
            size, actual = _stream(entry, client, response, part, url, notify)
            if actual != expected:
                raise ImageError(
                    f"{entry.algorithm} mismatch for {url}: expected {expected}, got {actual}"
                )
            part.chmod(0o644)
            os.replace(part, target)
            _fsync_dir(target.parent)
        except OSError as exc:  # ENOSPC, EDQUOT, EACCES: say which file, not a traceback
            raise ImageError(f"cannot write {target}: {exc.strerror or exc}") from exc
        finally:
            part.unlink(missing_ok=True)
    return size


def _stream(
    entry: RegistryImage,
    client: Client,
    response: http.client.HTTPResponse,
    part: Path,
    url: str,
    notify: ProgressFn,
) -> tuple[int, str]:
    total = _content_length(response)
    digest = hashlib.new(entry.algorithm)
    done = 0
    # O_EXCL: the random name is ours alone; never follow or reuse someone else's file.
    fd = os.open(part, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with open(fd, "wb") as out:
        notify(Progress(entry, Stage.DOWNLOAD, 0, total, url))
        while chunk := client.read(response, CHUNK, url, whole=False):
            out.write(chunk)
            digest.update(chunk)
            done += len(chunk)
            notify(Progress(entry, Stage.DOWNLOAD, done, total, url))
        if total is not None and done != total:
            raise ImageError(f"download of {url} ended after {done} of {total} bytes")
        out.flush()
        os.fsync(out.fileno())
    return done, digest.hexdigest()


def _content_length(response: http.client.HTTPResponse) -> int | None:
    value = response.headers.get("Content-Length")
    return int(value) if value and value.isdigit() else None


def _check_space(directory: Path, total: int | None) -> None:
    free = shutil.disk_usage(directory).free
    if total is not None and total > free:
        raise ImageError(
            f"not enough space in {directory}: the image needs {total // 2**20} MiB, "
            f"{free // 2**20} MiB free"
        )


def _write_record(entry: RegistryImage, cache_dir: Path, record: Record) -> None:
    path = record_path(entry, cache_dir)
    part = cache_dir / f".{path.name}.part.{secrets.token_hex(8)}"
    try:
        text = json.dumps(dataclasses.asdict(record), indent=2, sort_keys=True) + "\n"
        part.write_text(text)
        part.chmod(0o644)
        os.replace(part, path)
    except OSError as exc:
        raise ImageError(f"cannot record the checksum in {path}: {exc}") from exc
    finally:
        part.unlink(missing_ok=True)


def _fsync_dir(directory: Path) -> None:
    # The rename is durable only once the directory entry is on disk (rename(2), fsync(2)).
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _remove_stale_parts(entry: RegistryImage, cache_dir: Path) -> None:
    """Delete temporary files a killed pull (SIGKILL, power loss) left behind long ago."""
    cutoff = time.time() - STALE_PART_AGE
    for part in cache_dir.glob(f".{entry.cache_file}*.part.*"):
        with contextlib.suppress(OSError):
            if part.stat().st_mtime < cutoff:
                part.unlink()


# -- verify ------------------------------------------------------------------------------


def verify(entry: RegistryImage, cache_dir: Path) -> VerifyResult:
    """Re-hash the cached image against its sidecar; never touches the network.

    :raises ImageError: when the cached file cannot be read.
    """
    path = image_path(entry, cache_dir)
    if not path.exists():
        return VerifyResult(entry, VerifyStatus.NOT_CACHED, path)
    record = load_record(entry, cache_dir)
    if record is None:
        return VerifyResult(entry, VerifyStatus.UNRECORDED, path, detail="no recorded checksum")
    checked = VerifyResult(entry, VerifyStatus.OK, path, record.algorithm, record.hash)
    size = path.stat().st_size
    if size != record.size:
        detail = f"size {size} bytes, recorded {record.size}"
        return dataclasses.replace(checked, status=VerifyStatus.MISMATCH, detail=detail)
    try:
        actual = hash_file(path, record.algorithm)
    except OSError as exc:
        raise ImageError(f"cannot read {path}: {exc.strerror or exc}") from exc
    if actual != record.hash:
        return dataclasses.replace(checked, status=VerifyStatus.MISMATCH, actual=actual)
    return dataclasses.replace(checked, actual=actual)


def hash_file(path: Path, algorithm: str) -> str:
    """The hex digest of a file, read in large blocks."""
    with path.open("rb") as stream:
        return hashlib.file_digest(stream, algorithm).hexdigest()
