"""Instance disks whose image moved on: `holosc up --recreate`.

An overlay keeps the digest it was created on for its whole life (docs/images.md). Only
when asked does an instance move to what its image is now: a registry tag that names
another digest (after `holosc pull` or `up --pull`), a build that made another image
(after an edit of the Dockerfile), or a local image file that changed (which
`holos-image overlay` refuses to boot). Recreating removes the instance's root disk; its
named volumes stay.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from holos_runtime.image import Failure, stamp_changes
from holos_runtime.imagecache import Cache
from holos_runtime.layers import Layers

from holosc.core import layout
from holosc.core.model import Project

DISK = "root.qcow2"


@dataclasses.dataclass(frozen=True, slots=True)
class StaleDisk:
    instance: str
    disk: Path
    reason: str  # "ubuntu:noble moved from sha256:1a2b… to sha256:3c4d…"


def stale_disks(project: Project, state_dir: Path, project_dir: Path) -> list[StaleDisk]:
    """Existing instance disks whose registry tag names another digest now, or whose local
    image changed since they were created; in the project's service order."""
    cache = Cache(layout.images(state_dir))
    stale = []
    for service in project.services:
        for index in range(service.replicas):
            inst = layout.instance_name(service.name, index)
            disk = layout.root_disk(state_dir, project.name, inst)
            if not disk.exists():
                continue
            image = service.image
            if service.build is not None:
                reason = _rebuilt(Layers(cache), project.name, service.name, disk)
            elif image.path is not None:
                reason = _local_change(project_dir / image.path, disk)
            else:
                reason = _moved_tag(cache, image.ref, disk)
            if reason:
                stale.append(StaleDisk(inst, disk, reason))
    return stale


def _moved_tag(cache: Cache, ref: str, disk: Path) -> str | None:
    now = cache.resolve(ref)
    base = cache.digest_of(disk)
    if now is None or base is None or base == now.digest:
        return None
    return f"{ref} moved from {_short(base)} to {now.short}"


def _rebuilt(layers: Layers, project: str, service: str, disk: Path) -> str | None:
    now, base = layers.tagged(project, service), layers.key_of(disk)
    if now is None or base is None or base == now:
        return None
    return f"the build of {service} moved from {base[:12]} to {now[:12]}"


def _local_change(image: Path, disk: Path) -> str | None:
    try:
        changed = stamp_changes(image, disk.with_name(DISK + ".base"))
    except Failure:  # the image is gone: the start says so; nothing to recreate on
        return None
    return f"{image} changed ({', '.join(changed)})" if changed else None


def _short(digest: str) -> str:
    algorithm, _, value = digest.partition(":")
    return f"{algorithm}:{value[:12]}"


def remove(stale: StaleDisk) -> None:
    """Delete the disk and its local-image stamp: the next start creates both anew."""
    for path in (stale.disk, stale.disk.with_name(DISK + ".base")):
        path.unlink(missing_ok=True)
