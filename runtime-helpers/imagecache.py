"""The image cache on disk: immutable files named by digest, tags that point at them.

Layout of the images state directory (`%S/holos/images`):

    blobs/<alg>/<hex>          a verified image; never rewritten, deleted only by a prune
    blobs/<alg>/<hex>.json     its record: algorithm, hash, size, upstream url, format, pulled
    blobs/<alg>/.part.<rand>   a download in flight (removed on any failure)
    tags/<name>/<tag>          symlink to ../../blobs/<alg>/<hex>; a pull replaces it in one
                               rename, so a tag always names one complete, verified file
    locks/<key>                one per upstream URL: concurrent pulls of one image download
                               it once
    <name>-<tag>.<format>      the old layout's file; migration turns it into a symlink to
                               its blob (same inode), so overlays created on it keep working

An instance's overlay names its blob by a relative backing path
(`../../../images/blobs/<alg>/<hex>`), so it keeps its digest whatever the tag does later.
The overlays are the record of who uses what: `users()` reads their qcow2 headers.

Everything here is the manager's user's alone: directories 0700, files 0600, whatever
the umask of the process that writes them (an image holds whatever its guest or its
Dockerfile put there). A blob enters the cache only when it is self-contained
(holos_runtime.qcow2: no backing or data file its header names).

Locks are flock(2) on the images directory itself: shared while a blob is committed and
tagged or an overlay is created on one, exclusive while pruning or migrating. Nothing is
held while an instance runs: blobs are never rewritten, and a prune refuses a blob that
an overlay names.

Standard library only: used by the `holos-image` runtime helper and by holosc.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import hashlib
import json
import os
import secrets
import stat
import time
from collections.abc import Iterator, Sequence
from pathlib import Path, PurePosixPath

from holos_runtime import qcow2

ALGORITHMS = ("sha256", "sha512")
STALE_PART_AGE = 24 * 3600  # a live download writes at least once per stall timeout


@dataclasses.dataclass(frozen=True, slots=True)
class Record:
    """What was verified when a blob entered the cache."""

    algorithm: str
    hash: str
    size: int
    url: str  # the upstream URL ("" for a file adopted from the old layout unverified)
    format: str = "qcow2"
    pulled: str = ""  # UTC, ISO 8601

    @property
    def digest(self) -> str:
        return f"{self.algorithm}:{self.hash}"

    @property
    def short(self) -> str:
        return f"{self.algorithm}:{self.hash[:12]}"


@dataclasses.dataclass(frozen=True, slots=True)
class Legacy:
    """A registry image as the old layout named it: `<name>-<tag>.<format>`."""

    ref: str
    algorithm: str
    format: str

    @property
    def file_name(self) -> str:
        name, _, tag = self.ref.partition(":")
        return f"{name}-{tag}.{self.format}"


def now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def hash_file(path: Path, algorithm: str) -> str:
    with path.open("rb") as stream:
        return hashlib.file_digest(stream, algorithm).hexdigest()


def split_digest(digest: str) -> tuple[str, str]:
    algorithm, _, value = digest.partition(":")
    if algorithm not in ALGORITHMS or not value or not all(c in "0123456789abcdef" for c in value):
        raise ValueError(f"not a digest: {digest!r}")
    return algorithm, value


class Cache:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.blobs = root / "blobs"
        self.tags = root / "tags"

    def create(self) -> Cache:
        """The cache's directories, private (an older holosc made them 0755).

        :raises PermissionError: when one is a symlink or another user's.
        """
        self.root.parent.mkdir(parents=True, exist_ok=True)
        for directory in (self.root, self.blobs, self.tags, self.root / "locks"):
            private_dir(directory, follow=directory is self.root)
        return self

    # -- names -----------------------------------------------------------------------

    def blob(self, digest: str) -> Path:
        algorithm, value = split_digest(digest)
        return self.blobs / algorithm / value

    def tag(self, ref: str) -> Path:
        name, _, tag = ref.partition(":")
        return self.tags / name / tag

    def read_record(self, digest: str) -> Record | None:
        """A blob's record as written, whether or not the blob is still intact."""
        blob = self.blob(digest)
        try:
            raw = json.loads(blob.with_name(blob.name + ".json").read_text())
            record = Record(**{f.name: raw[f.name] for f in dataclasses.fields(Record)})
        except (OSError, ValueError, KeyError, TypeError):
            return None
        return record if record.digest == digest else None

    def record(self, digest: str) -> Record | None:
        """The record of a blob that exists with its recorded size, else None."""
        record = self.read_record(digest)
        try:
            size = self.blob(digest).stat().st_size
        except OSError:
            return None
        return record if record is not None and record.size == size else None

    def tag_digest(self, ref: str) -> str | None:
        """The digest a tag names (its blob may be gone), or None."""
        try:
            target = PurePosixPath(os.readlink(self.tag(ref)))
        except OSError:
            return None
        if len(target.parts) < 2 or target.parts[-2] not in ALGORITHMS:
            return None
        return f"{target.parts[-2]}:{target.parts[-1]}"

    def resolve(self, ref: str) -> Record | None:
        """The complete blob a tag points at, or None."""
        digest = self.tag_digest(ref)
        return None if digest is None else self.record(digest)

    def digests(self) -> list[str]:
        found = []
        for algorithm in ALGORITHMS:
            directory = self.blobs / algorithm
            if directory.is_dir():
                found += [
                    f"{algorithm}:{p.name}"
                    for p in directory.iterdir()
                    if not p.name.startswith(".") and not p.name.endswith(".json")
                ]
        return sorted(found)

    def tagged(self) -> dict[str, str]:
        """{ref: digest} of every tag that points at a complete blob."""
        refs = {}
        if self.tags.is_dir():
            for name in sorted(self.tags.iterdir()):
                for tag in sorted(name.iterdir()) if name.is_dir() else []:
                    ref = f"{name.name}:{tag.name}"
                    record = None if tag.name.startswith(".") else self.resolve(ref)
                    if record is not None:
                        refs[ref] = record.digest
        return refs

    # -- locks -----------------------------------------------------------------------

    @contextlib.contextmanager
    def locked(self, *, shared: bool) -> Iterator[None]:
        fd = os.open(self.root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            fcntl.flock(fd, fcntl.LOCK_SH if shared else fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)

    @contextlib.contextmanager
    def download_lock(self, url: str) -> Iterator[None]:
        """One download per upstream URL at a time (the second waits, then finds it)."""
        key = hashlib.sha256(url.encode()).hexdigest()[:32]
        fd = open_lock(self.root / "locks" / key)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)

    # -- adding ----------------------------------------------------------------------

    def part(self, algorithm: str) -> Path:
        directory = self.blobs / algorithm
        private_dir(directory)
        return directory / f".part.{secrets.token_hex(8)}"

    def commit(self, part: Path, record: Record, ref: str) -> Path:
        """Move a verified download into place as its digest and point `ref` at it.

        An existing blob of that digest is never replaced (same bytes by construction).

        :raises qcow2.UnsafeImage: when the image names a backing or data file.
        """
        qcow2.require_self_contained(part, record.format, f"image {ref}")
        with self.locked(shared=True):
            blob = self.blob(record.digest)
            if self.record(record.digest) is None:
                part.chmod(0o600)
                with contextlib.suppress(FileExistsError):
                    os.link(part, blob)  # never overwrites
                _write_json(blob.with_name(blob.name + ".json"), dataclasses.asdict(record))
                _fsync_dir(blob.parent)
            part.unlink(missing_ok=True)
            self.set_tag(ref, record.digest)
        return blob

    def set_tag(self, ref: str, digest: str) -> None:
        link = self.tag(ref)
        private_dir(link.parent)
        algorithm, value = split_digest(digest)
        tmp = link.with_name(f".{link.name}.{secrets.token_hex(8)}")
        tmp.symlink_to(Path("..", "..", "blobs", algorithm, value))
        os.replace(tmp, link)
        _fsync_dir(link.parent)

    def adopt(self, path: Path, ref: str, algorithm: str, fmt: str, url: str = "") -> Record:
        """Add a file that is already on this host (a hard link: no copy) and tag it.

        :raises qcow2.UnsafeImage: when the image names a backing or data file.
        """
        qcow2.require_self_contained(path, fmt, f"image {ref}")
        self.create()
        record = Record(algorithm, hash_file(path, algorithm), path.stat().st_size, url, fmt, now())
        blob = self.blob(record.digest)
        private_dir(blob.parent)
        with self.locked(shared=True):
            if self.record(record.digest) is None:
                with contextlib.suppress(FileExistsError):
                    os.link(path, blob)
                _write_json(blob.with_name(blob.name + ".json"), dataclasses.asdict(record))
            self.set_tag(ref, record.digest)
        return record

    # -- migration -------------------------------------------------------------------

    def migrate(self, legacy: Sequence[Legacy]) -> list[str]:
        """Convert files of the old layout in place, once: no download, no copy.

        Each `<name>-<tag>.<format>` is hard-linked as its blob (its recorded hash when
        its sidecar matches, else hashed now), tagged unless the tag exists, and replaced
        by a symlink to the blob. Overlays and running QEMUs that use the old path keep
        the same file. A file that is not this user's, or not a self-contained image, is
        left alone: its tag then stays unset and the next pull downloads the image.
        Returns the refs converted.
        """
        todo = [item for item in legacy if _adoptable(self.root / item.file_name, item.format)]
        if not todo:
            return []
        self.create()
        done = []
        with self.locked(shared=False):
            for item in todo:
                path = self.root / item.file_name
                if not _adoptable(path, item.format):
                    continue  # another process converted it meanwhile
                record = _legacy_record(path, item)
                blob = self.blob(record.digest)
                private_dir(blob.parent)
                if self.record(record.digest) is None:
                    with contextlib.suppress(FileExistsError):
                        os.link(path, blob)
                    _write_json(blob.with_name(blob.name + ".json"), dataclasses.asdict(record))
                if self.resolve(item.ref) is None:
                    self.set_tag(item.ref, record.digest)
                tmp = path.with_name(f".{path.name}.{secrets.token_hex(8)}")
                tmp.symlink_to(blob.relative_to(self.root))
                os.replace(tmp, path)
                path.with_name(path.name + ".json").unlink(missing_ok=True)
                done.append(item.ref)
            _fsync_dir(self.root)
        return done

    # -- users and removal -----------------------------------------------------------

    def users(self) -> dict[str, list[str]]:
        """{digest: ["<project>/<instance>", ...]} from the overlays' backing files."""
        found: dict[str, list[str]] = {}
        instances = self.root.parent / "instances"
        for overlay in sorted(instances.glob("*/*/*.qcow2")) if instances.is_dir() else []:
            digest = self.digest_of(overlay)
            if digest is not None:
                user = f"{overlay.parent.parent.name}/{overlay.parent.name}"
                found.setdefault(digest, []).append(user)
        return found

    def digest_of(self, overlay: Path) -> str | None:
        """The digest an overlay is based on (its qcow2 backing file), or None."""
        path = backing_path(overlay)
        if path is None:
            return None
        if len(path.parts) >= 3 and path.parts[-3] == "blobs" and path.parts[-2] in ALGORITHMS:
            return f"{path.parts[-2]}:{path.parts[-1]}"
        if path.parent.name == "images":  # an old-layout path, now a symlink to its blob
            with contextlib.suppress(OSError):
                target = PurePosixPath(os.readlink(self.root / path.name))
                if target.parts[:1] == ("blobs",) and len(target.parts) == 3:
                    return f"{target.parts[1]}:{target.parts[2]}"
        return None

    def remove(self, digest: str) -> None:
        """Delete a blob with its record, tags and old-layout links. Call under the
        exclusive lock, after checking users()."""
        blob = self.blob(digest)
        for ref, tagged in self.tagged().items():
            if tagged == digest:
                self.tag(ref).unlink(missing_ok=True)
        for link in self.root.iterdir():
            if link.is_symlink() and (self.root / os.readlink(link)) == blob:
                link.unlink()
        blob.with_name(blob.name + ".json").unlink(missing_ok=True)
        blob.unlink(missing_ok=True)

    def remove_stale_parts(self) -> None:
        """Temporary files a killed pull (SIGKILL, power loss) left behind long ago."""
        cutoff = time.time() - STALE_PART_AGE
        for part in self.blobs.glob("*/.part.*"):
            with contextlib.suppress(OSError):
                if part.lstat().st_mtime < cutoff:
                    part.unlink()  # unlink(2) removes a symlink itself, never its target


def backing_path(overlay: Path) -> PurePosixPath | None:
    """The file an overlay's backing name resolves to (relative to its directory), or None."""
    backing = backing_file(overlay)
    if backing is None:
        return None
    return PurePosixPath(os.path.normpath(overlay.parent / backing))


def backing_file(path: Path) -> str | None:
    """The backing file name in a qcow2 header, or None (none, or not a qcow2 image)."""
    try:
        return qcow2.read_header(path).backing
    except qcow2.UnsafeImage:
        return None


def private_dir(path: Path, *, follow: bool = False) -> None:
    """Make `path` a directory of this user's alone (0700), or check that it is one.

    Only the images directory itself may be a symlink (an admin may move it to another
    disk); nothing below it is followed, or used when another user owns it.

    :raises PermissionError: when it is a symlink or not this user's.
    """
    with contextlib.suppress(FileExistsError):
        path.mkdir(mode=0o700)
    st = path.stat() if follow else path.lstat()
    if not stat.S_ISDIR(st.st_mode) or st.st_uid != os.geteuid():
        raise PermissionError(f"{path} is not a directory of this user: refusing to use it")
    if stat.S_IMODE(st.st_mode) != 0o700:
        path.chmod(0o700)


def open_lock(path: Path) -> int:
    """A lock file's descriptor, created 0600; never through a symlink."""
    return os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)


def _adoptable(path: Path, fmt: str) -> bool:
    """A file of the old layout holosc may take into the cache as it is."""
    try:
        st = path.lstat()
        qcow2.require_self_contained(path, fmt, str(path))
    except (OSError, qcow2.UnsafeImage):
        return False
    return stat.S_ISREG(st.st_mode) and st.st_uid == os.geteuid()


def _legacy_record(path: Path, item: Legacy) -> Record:
    size = path.stat().st_size
    pulled = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(path.stat().st_mtime))
    with contextlib.suppress(OSError, ValueError, KeyError, TypeError):
        old = json.loads(path.with_name(path.name + ".json").read_text())
        if old["algorithm"] == item.algorithm and int(old["size"]) == size:
            value = str(old["hash"]).lower()
            split_digest(f"{item.algorithm}:{value}")
            return Record(item.algorithm, value, size, str(old["url"]), item.format, pulled)
    # Placed by hand (offline hosts): named by what it holds, not verified upstream.
    return Record(item.algorithm, hash_file(path, item.algorithm), size, "", item.format, pulled)


def _write_json(path: Path, data: object) -> None:
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(8)}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    try:
        with open(fd, "w") as stream:
            stream.write(json.dumps(data, indent=2, sort_keys=True) + "\n")
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def _fsync_dir(directory: Path) -> None:
    # A rename is durable only once the directory entry is on disk (rename(2), fsync(2)).
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
