"""Built images in the image cache, as `holosc images` lists, prunes and guards them.

The layers and build tags themselves are holos_runtime.layers (docs/images.md). Who uses
a layer is read from qcow2 headers every time (`Layers.used()`: build tags and instance
overlays, with every layer below them), as for registry blobs: there is no reference
count to get out of step. A layer chain's bottom names the registry blob it was built on,
so that blob is used for as long as the chain is.
"""

from __future__ import annotations

import contextlib
import dataclasses

from holos_runtime.imagecache import backing_file
from holos_runtime.layers import LayerRecord, Layers

Users = dict[str, list[str]]


@dataclasses.dataclass(frozen=True, slots=True)
class Image:
    """A built image: a build tag's top layer, or an old build an instance is still on."""

    name: str  # "build <project>/<service>", or "<none>"
    key: str
    size: int  # of the whole chain above its base
    created: str
    instances: tuple[str, ...]  # "<project>/<instance>" whose overlays are on it


@dataclasses.dataclass(frozen=True, slots=True)
class Layer:
    key: str
    parent: str  # a layer key, or what the first layer is on (blob digest, file, "?")
    made_by: str
    size: int
    users: tuple[str, ...]


@dataclasses.dataclass(frozen=True, slots=True)
class Kept:
    key: str  # a build tag's layer, or one an instance's overlay is directly on
    depth: int  # layers in its chain, itself included
    users: tuple[str, ...]


@dataclasses.dataclass(frozen=True, slots=True)
class Pruned:
    tags: tuple[str, ...]  # "<project>/<service>" dropped (prune --all)
    layers: tuple[Layer, ...]  # removed, top first
    kept: tuple[Kept, ...]
    freed: int


def is_build(user: str) -> bool:
    return user.startswith("build ")


def images(layers: Layers, used: Users) -> list[Image]:
    """Every build tag, then every other layer an instance's overlay is directly on."""
    tags = layers.all_tags()
    tops = [(f"build {tag}", key) for tag, key in tags.items()]
    tagged = set(tags.values())
    for key in _instance_tops(layers):
        if key not in tagged:
            tagged.add(key)
            tops.append(("<none>", key))
    found = []
    for name, key in tops:
        record = layers.record(key)
        instances = tuple(u for u in used.get(key, []) if not is_build(u))
        created = record.created if record else "-"
        found.append(Image(name, key, chain_size(layers, key), created, instances))
    return found


def _instance_tops(layers: Layers) -> list[str]:
    """The layers instances' overlays are directly on, in instance order."""
    return list(dict.fromkeys(key for key, _ in layers.overlays()))


def chain_size(layers: Layers, key: str) -> int:
    return sum(_size(layers, k) for k in layers.lineage(key))


def _size(layers: Layers, key: str) -> int:
    try:
        return layers.path(key).stat().st_size
    except OSError:
        return 0


def all_layers(layers: Layers, used: Users) -> list[Layer]:
    """Every layer, each chain from its bottom up (siblings by creation time)."""
    keys = layers.keys()
    parents = {key: layers.parent_of(key) for key in keys}
    children: dict[str | None, list[str]] = {}
    for key, parent in parents.items():
        children.setdefault(parent if parent in parents else None, []).append(key)
    records = {key: layers.record(key) for key in parents}
    order: list[str] = []
    stack = sorted(children.get(None, []), key=lambda k: _created(records[k], k), reverse=True)
    while stack:
        key = stack.pop()
        order.append(key)
        below = sorted(children.get(key, []), key=lambda k: _created(records[k], k))
        stack.extend(reversed(below))
    order += [key for key in parents if key not in set(order)]  # a cycle: never made so
    return [_layer(layers, key, parents[key], records[key], used) for key in order]


def _created(record: LayerRecord | None, key: str) -> tuple[str, str]:
    return (record.created if record else "", key)


def _layer(
    layers: Layers, key: str, parent: str | None, record: LayerRecord | None, used: Users
) -> Layer:
    below = parent or layers.base_digest(key) or backing_file(layers.path(key)) or "?"
    made_by = record.made_by if record else "?"
    return Layer(key, below, made_by, _size(layers, key), tuple(used.get(key, [])))


def blob_users(layers: Layers, used: Users) -> Users:
    """{blob digest: users} of the used layer chains built on registry blobs."""
    found: Users = {}
    for key, users in used.items():
        if layers.parent_of(key) is None and (digest := layers.base_digest(key)):
            _add(found, digest, users)
    return found


def blob_bases(layers: Layers, used: Users) -> Users:
    """{blob digest: what is on it} for every layer chain, used or not: `images rm` of
    such a blob would leave the layers above it unreadable."""
    found: Users = {}
    keys = layers.keys()
    for key in keys:
        if layers.parent_of(key) is not None or not (digest := layers.base_digest(key)):
            continue
        _add(found, digest, used.get(key) or [f"unused layer {key[:12]}"])
    return found


def _add(found: Users, digest: str, users: list[str]) -> None:
    known = found.setdefault(digest, [])
    known += [u for u in users if u not in known]


def merged(*maps: Users) -> Users:
    """Users maps joined: each digest's users once, in order of first mention."""
    found: Users = {}
    for users in maps:
        for digest, names in users.items():
            _add(found, digest, names)
    return found


def prune(layers: Layers, *, all_: bool) -> Pruned:
    """Delete the layers nothing uses; with `all_` first the build tags no instance
    uses. Call under the cache's exclusive lock."""
    dropped = _drop_unused_tags(layers) if all_ else []
    used = layers.used()
    removed = []
    for layer in reversed(all_layers(layers, used)):  # top first: no layer loses its parent
        if not layer.users:
            layers.remove(layer.key)
            removed.append(layer)
    layers.remove_abandoned_work()
    kept = tuple(
        Kept(key, len(layers.lineage(key)), tuple(used[key]))
        for key in dict.fromkeys([*layers.all_tags().values(), *_instance_tops(layers)])
        if key in used
    )
    return Pruned(tuple(dropped), tuple(removed), kept, sum(r.size for r in removed))


def _drop_unused_tags(layers: Layers) -> list[str]:
    needed = {k for top in _instance_tops(layers) for k in layers.lineage(top)}
    dropped = []
    for tag, key in layers.all_tags().items():
        if key not in needed:
            project, _, service = tag.partition("/")
            link = layers.tag(project, service)
            link.unlink(missing_ok=True)
            with contextlib.suppress(OSError):  # the project's last build: its directory too
                link.parent.rmdir()
            dropped.append(tag)
    return dropped
