"""Built images in the image cache: layers named by their build key, and build tags.

A Dockerfile build (holos-bake) makes one layer per RUN or COPY and a last one, the seal,
that instances boot from. Each layer is a qcow2 overlay on the one before (the first on
the base image), named by a key that chains what made it, as Docker's build cache does:

    key(0)  = sha256(BUILDER_VERSION, base digest, disk size)
    key(k)  = sha256(key(k-1), step k as canonical JSON: its script and input)
    seal    = sha256(key(n), the seal's script)

So an unchanged Dockerfile on an unchanged base names layers that exist already, and an
edit of step k names new layers from k on while 1..k-1 are found. Below the images state
directory:

    layers/<hex>.qcow2          a layer; never rewritten, deleted only by a prune
    layers/<hex>.json           its record: parent, what made it, project/service, created
    layers/.work-<rand>/        a build in flight (its layers before they are committed)
    builds/<project>/<service>  symlink to ../../layers/<hex>.qcow2: the service's image now

A layer's backing file name is relative (`<parent hex>.qcow2`, or
`../blobs/<alg>/<hex>` for a registry base), so it names exactly one parent for life.
Only these files may name a backing file (`check`): the image at the bottom of a chain
must be self-contained (holos_runtime.qcow2). Layers are 0600 in 0700 directories, and
the cleanup of a dead build's work directory goes through directory descriptors
(O_NOFOLLOW, owner checked): it never follows a symlink someone planted there.
The locks are the image cache's (imagecache.Cache.locked): shared while a build commits
or an overlay is created on a build, exclusive while pruning.

Standard library only: used by the `holos-bake` and `holos-image` helpers and by holosc.
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
from collections.abc import Iterator
from pathlib import Path

from holos_runtime import qcow2
from holos_runtime.imagecache import (
    Cache,
    _fsync_dir,
    _write_json,
    backing_file,
    backing_path,
    private_dir,
)

# Part of every key: bump it when the builder changes what it writes into a layer (its
# seed, the seal's script, how a step runs), so no build reuses a layer made the old way.
BUILDER_VERSION = "holos-bake 2"
HEX = frozenset("0123456789abcdef")


def chain(parent: str, data: object) -> str:
    """The key of what `data` (JSON) makes on top of `parent`."""
    text = json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(f"{parent}\n{text}".encode()).hexdigest()


@dataclasses.dataclass(frozen=True, slots=True)
class LayerRecord:
    key: str
    parent: str  # a layer key, or the base's digest/identity for the first layer
    made_by: str  # "RUN apt-get update" (an excerpt), or "seal"
    project: str
    service: str
    created: str  # UTC, ISO 8601
    size: int = 0


class Layers:
    """The layers and build tags of one image cache."""

    def __init__(self, cache: Cache) -> None:
        self.cache = cache
        self.root = cache.root / "layers"
        self.builds = cache.root / "builds"

    def path(self, key: str) -> Path:
        if len(key) != 64 or not set(key) <= HEX:
            raise ValueError(f"not a layer key: {key!r}")
        return self.root / f"{key}.qcow2"

    def record(self, key: str) -> LayerRecord | None:
        """The record of a complete layer (file and record both there), else None."""
        path = self.path(key)
        try:
            raw = json.loads(path.with_suffix(".json").read_text())
            record = LayerRecord(**{f.name: raw[f.name] for f in dataclasses.fields(LayerRecord)})
            size = path.stat().st_size
        except (OSError, ValueError, KeyError, TypeError):
            return None
        return record if record.key == key and record.size == size else None

    def owns(self, path: Path) -> bool:
        """Whether `path` is a layer of this cache (a file holos-bake made)."""
        name = path.name.removesuffix(".qcow2")
        if len(name) != 64 or not set(name) <= HEX or not path.name.endswith(".qcow2"):
            return False
        try:
            st, parent, root = path.lstat(), path.parent.stat(), self.root.stat()
        except OSError:
            return False
        same_dir = (parent.st_dev, parent.st_ino) == (root.st_dev, root.st_ino)
        return same_dir and stat.S_ISREG(st.st_mode) and st.st_uid == os.geteuid()

    def check(self, key: str, what: str, base: tuple[str, str] | None = None) -> None:
        """Refuse a layer whose chain reaches beyond the layers and a self-contained image
        at the bottom; with `base` (path, format), that image must be this one.

        :raises qcow2.UnsafeImage: naming `what` and the file refused.
        """
        bottom, fmt = qcow2.check_chain(self.path(key), "qcow2", self.owns, what)
        if base is None:
            return
        path, expected = base
        if fmt != expected or os.path.realpath(bottom) != os.path.realpath(path):
            raise qcow2.UnsafeImage(f"{what}: they rest on {bottom} ({fmt}), not on {path}")

    def keys(self) -> list[str]:
        if not self.root.is_dir():
            return []
        return sorted(p.stem for p in self.root.glob("*.qcow2") if len(p.stem) == 64)

    # -- build tags ------------------------------------------------------------------

    def tag(self, project: str, service: str) -> Path:
        return self.builds / project / service

    def tagged(self, project: str, service: str) -> str | None:
        """The layer key a build tag names, or None."""
        try:
            target = os.readlink(self.tag(project, service))
        except OSError:
            return None
        name = Path(target).name
        return name.removesuffix(".qcow2") if name.endswith(".qcow2") else None

    def all_tags(self) -> dict[str, str]:
        """{"<project>/<service>": key} of every build tag."""
        found = {}
        if self.builds.is_dir():
            for project in sorted(self.builds.iterdir()):
                for service in sorted(project.iterdir()) if project.is_dir() else []:
                    key = self.tagged(project.name, service.name)
                    if key is not None and not service.name.startswith("."):
                        found[f"{project.name}/{service.name}"] = key
        return found

    def set_tag(self, project: str, service: str, key: str) -> None:
        link = self.tag(project, service)
        private_dir(self.builds)
        private_dir(link.parent)
        tmp = link.with_name(f".{link.name}.{secrets.token_hex(8)}")
        tmp.symlink_to(Path("..", "..", "layers", f"{key}.qcow2"))
        os.replace(tmp, link)
        _fsync_dir(link.parent)

    # -- chains ----------------------------------------------------------------------

    def parent_of(self, key: str) -> str | None:
        """The layer below `key` (None for a first layer, whose parent is an image)."""
        backing = backing_file(self.path(key))
        if backing is None or "/" in backing or not backing.endswith(".qcow2"):
            return None
        return backing.removesuffix(".qcow2")

    def lineage(self, key: str) -> list[str]:
        """`key` and the layers below it, top first."""
        seen = [key]
        while (parent := self.parent_of(seen[-1])) is not None and parent not in seen:
            seen.append(parent)
        return seen

    def key_of(self, overlay: Path) -> str | None:
        """The layer an instance's overlay is based on, or None."""
        path = backing_path(overlay)
        if path is None or path.parent.name != "layers" or path.suffix != ".qcow2":
            return None
        return path.stem if len(path.stem) == 64 else None

    def used(self) -> dict[str, list[str]]:
        """{layer key: users} for every layer a build tag or an instance overlay needs,
        with the layers below them (a layer is needed while anything above it is)."""
        users: dict[str, list[str]] = {}
        roots = [(key, f"build {tag}") for tag, key in self.all_tags().items()]
        for key, user in [*roots, *self.overlays()]:
            for layer in self.lineage(key):
                users.setdefault(layer, []).append(user)
        return users

    def overlays(self) -> list[tuple[str, str]]:
        """(layer key, "<project>/<instance>") of every instance overlay on a layer."""
        found = []
        instances = self.cache.root.parent / "instances"
        for overlay in sorted(instances.glob("*/*/*.qcow2")) if instances.is_dir() else []:
            key = self.key_of(overlay)
            if key is not None:
                found.append((key, f"{overlay.parent.parent.name}/{overlay.parent.name}"))
        return found

    def base_digest(self, key: str) -> str | None:
        """The registry blob digest at the bottom of `key`'s chain, if any."""
        bottom = self.lineage(key)[-1]
        backing = backing_file(self.path(bottom))
        if backing is None:
            return None
        parts = Path(backing).parts
        if len(parts) == 4 and parts[:2] == ("..", "blobs"):
            return f"{parts[2]}:{parts[3]}"
        return None

    # -- adding and removing ---------------------------------------------------------

    def work_dir(self) -> Path:
        private_dir(self.root)
        work = self.root / f".work-{secrets.token_hex(8)}"
        work.mkdir(mode=0o700)
        return work

    def commit(self, built: Path, record: LayerRecord) -> None:
        """Move a finished layer (its backing name already final) into place. Call under
        the cache's shared lock. An existing layer of that key is never replaced."""
        path = self.path(record.key)
        if self.record(record.key) is None:
            with open(built, "rb+") as stream:
                os.fsync(stream.fileno())
            built.chmod(0o600)
            with contextlib.suppress(FileExistsError):
                os.link(built, path)
            sized = dataclasses.replace(record, size=path.stat().st_size)
            _write_json(path.with_suffix(".json"), dataclasses.asdict(sized))
            _fsync_dir(self.root)
        built.unlink(missing_ok=True)

    def remove(self, key: str) -> None:
        """Delete a layer and its record. Call under the exclusive lock, after used()."""
        path = self.path(key)
        path.with_suffix(".json").unlink(missing_ok=True)
        path.unlink(missing_ok=True)

    def remove_abandoned_work(self) -> None:
        """Work directories of builds that died (the builder holds a lock on its own).

        Only real directories of this user's, opened without following a symlink, and
        emptied through their descriptor: a `.work-x` symlink to /etc is left alone.
        """
        try:
            root = os.open(self.root, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
        except OSError:
            return  # no layers yet
        try:
            for name in os.listdir(root):
                if name.startswith(".work-"):
                    with contextlib.suppress(OSError):
                        _remove_dead_work(root, name)
        finally:
            os.close(root)


def _remove_dead_work(parent: int, name: str) -> None:
    """Empty and remove directory `name` below `parent` unless a live build locks it."""
    flags = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
    fd = os.open(name, flags, dir_fd=parent)  # ELOOP/ENOTDIR: a symlink or file, not ours
    try:
        if os.fstat(fd).st_uid != os.geteuid():
            return
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return  # a live build
        for entry in os.listdir(fd):
            # unlink(2) of a symlink removes the link; a directory (never ours) stays.
            if not stat.S_ISDIR(os.stat(entry, dir_fd=fd, follow_symlinks=False).st_mode):
                os.unlink(entry, dir_fd=fd)
        os.rmdir(name, dir_fd=parent)
    finally:
        os.close(fd)


@contextlib.contextmanager
def build_lock(path: Path, *, wait: bool = True) -> Iterator[bool]:
    """flock(2) on a file or directory: one build at a time, and a live build's work
    directory is never taken for abandoned. Yields whether the lock is held."""
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
        except BlockingIOError:
            yield False
            return
        yield True
    finally:
        os.close(fd)
