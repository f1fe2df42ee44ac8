"""Registry images in the local cache, for holosc's commands (`pull`, `verify`, `images`,
`up`); never used by the compiler, so `holosc build` stays offline.

The cache itself (layout, locks, migration, users) is holos_runtime.imagecache and the
download is holos_runtime.fetch: the `holos-image` helper that the compiled image units
run uses the same code, so a unit and `holosc pull` share one cache and one download.
This module maps registry entries to those sources and their errors to ImageError.
"""

from __future__ import annotations

import contextlib
import dataclasses
import enum
from collections.abc import Iterator
from pathlib import Path

from holos_runtime import fetch
from holos_runtime.fetch import (
    MIRROR_ENV,
    Progress,
    ProgressFn,
    Stage,
    Timeouts,
    mirrored,
    parse_checksums,
)
from holos_runtime.imagecache import Cache, Legacy, Record, hash_file

from holosc.core import images
from holosc.core.images import RegistryImage
from holosc.core.model import Project
from holosc.errors import ImageError, UnknownImageError

__all__ = [
    "MIRROR_ENV",
    "Progress",
    "Record",
    "Stage",
    "Timeouts",
    "hash_file",
    "mirrored",
    "parse_checksums",
]


class VerifyStatus(enum.StrEnum):
    OK = "ok"
    MISMATCH = "mismatch"
    NOT_CACHED = "not cached"


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
            f"unknown image {what}; run 'holosc images --available' to list available images"
        )
    return entry


def source(entry: RegistryImage) -> fetch.Source:
    return fetch.Source(entry.ref, entry.url, entry.checksum_url, entry.algorithm, entry.format)


def open_cache(cache_dir: Path) -> Cache:
    """The cache, with files of the old layout converted (once; no download)."""
    cache = Cache(cache_dir)
    legacy = [Legacy(e.ref, e.algorithm, e.format) for e in images.REGISTRY]
    with errors():
        cache.migrate(legacy)
    return cache


@contextlib.contextmanager
def errors() -> Iterator[None]:
    try:
        yield
    except fetch.FetchError as exc:
        raise ImageError(str(exc)) from exc
    except OSError as exc:
        raise ImageError(f"image cache: {exc.strerror or exc}: {exc.filename or ''}") from exc


def image_path(entry: RegistryImage, cache_dir: Path) -> Path:
    """The blob the entry's tag points at (the tag's path when it has none)."""
    cache = Cache(cache_dir)
    record = cache.resolve(entry.ref)
    return cache.blob(record.digest) if record else cache.tag(entry.ref)


def load_record(entry: RegistryImage, cache_dir: Path) -> Record | None:
    return Cache(cache_dir).resolve(entry.ref)


def pull(
    entry: RegistryImage,
    cache_dir: Path,
    *,
    progress: ProgressFn | None = None,
    timeouts: Timeouts | None = None,
    mirror: str | None = None,
) -> Path:
    """Point the entry's tag at the current upstream image, downloading it unless cached.

    :raises ImageError: on HTTP errors, stalls, checksum mismatches or a full disk; the
        cache is left as it was.
    """
    cache = open_cache(cache_dir)
    with errors():
        record = fetch.pull(
            source(entry), cache, progress=progress, timeouts=timeouts, mirror=mirror
        )
    return cache.blob(record.digest)


def missing_images(project: Project, cache_dir: Path) -> list[RegistryImage]:
    """Registry images the project's services use that have no tag in the cache."""
    cache = open_cache(cache_dir)
    missing: list[RegistryImage] = []
    for service in project.services:
        image = service.image
        if not image.is_registry:
            continue
        entry = entry_for(image.ref)
        if entry not in missing and cache.resolve(entry.ref) is None:
            missing.append(entry)
    return missing


def ensure_images(
    project: Project,
    cache_dir: Path,
    progress: ProgressFn | None = None,
    *,
    timeouts: Timeouts | None = None,
    mirror: str | None = None,
    refresh: bool = False,
) -> list[Path]:
    """Pull the registry images the project needs that are not cached yet (every one with
    `refresh`: tags move to the current upstream; existing overlays keep their digest).

    :raises ImageError: when a download fails; images pulled before it stay cached.
    """
    entries = missing_images(project, cache_dir)
    if refresh:
        entries = list(
            dict.fromkeys(entry_for(s.image.ref) for s in project.services if s.image.is_registry)
        )
    return [
        pull(entry, cache_dir, progress=progress, timeouts=timeouts, mirror=mirror)
        for entry in entries
    ]


def verify(entry: RegistryImage, cache_dir: Path) -> VerifyResult:
    """Re-hash the blob the entry's tag points at against its record; never touches the
    network.

    :raises ImageError: when the cached file cannot be read.
    """
    cache = open_cache(cache_dir)
    digest = cache.tag_digest(entry.ref)
    record = None if digest is None else cache.read_record(digest)
    path = cache.blob(digest) if digest else cache.tag(entry.ref)
    if record is None or not path.exists():
        return VerifyResult(entry, VerifyStatus.NOT_CACHED, path)
    checked = VerifyResult(entry, VerifyStatus.OK, path, record.algorithm, record.hash)
    try:
        size = path.stat().st_size
        actual = "" if size != record.size else hash_file(path, record.algorithm)
    except OSError as exc:
        raise ImageError(f"cannot read {path}: {exc.strerror or exc}") from exc
    if size != record.size:
        detail = f"size {size} bytes, recorded {record.size}"
        return dataclasses.replace(checked, status=VerifyStatus.MISMATCH, detail=detail)
    if actual != record.hash:
        return dataclasses.replace(checked, status=VerifyStatus.MISMATCH, actual=actual)
    return dataclasses.replace(checked, actual=actual)
