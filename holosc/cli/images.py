"""`holosc pull | images | verify`: the registry image cache (`<state>/images/`)."""

from __future__ import annotations

import shutil
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated, TextIO

import typer
from holos_runtime import imagecache
from holos_runtime.layers import Layers
from holos_runtime.terminal import terminal_safe

from holosc.cli import options, streams
from holosc.core import images as registry
from holosc.core import layout
from holosc.errors import ExitCode, ImageError
from holosc.tools import layercache
from holosc.tools import pull as puller

MirrorOption = Annotated[
    str | None,
    typer.Option(
        "--mirror",
        envvar=puller.MIRROR_ENV,
        help="Fetch from this mirror instead of upstream: its scheme, host and path prefix "
        "replace those of every registry URL (e.g. http://mirror.lan/holos).",
    ),
]


def _cache_dir(user: bool, system: bool) -> Path:
    return layout.images(options.manager(user, system).state_dir)


def pull(
    image: Annotated[str, typer.Argument(help="Registry image, e.g. ubuntu:noble or alpine.")],
    *,
    mirror: MirrorOption = None,
    connect_timeout: Annotated[
        float, typer.Option(help="Seconds to connect and receive response headers.", min=0.1)
    ] = 30.0,
    stall_timeout: Annotated[
        float, typer.Option(help="Give up when the download sends no data for this long.", min=0.1)
    ] = 60.0,
    user: options.UserOption = False,
    system: options.SystemOption = False,
) -> None:
    """Download a registry image into the cache, verified against the upstream checksum.

    An image already cached with the upstream checksum is not downloaded again."""
    entry = puller.entry_for(image)
    path = puller.pull(
        entry,
        _cache_dir(user, system),
        progress=ProgressReport(sys.stderr),
        timeouts=puller.Timeouts(connect_timeout, stall_timeout),
        mirror=mirror or "",
    )
    print(f"image: {path}\nformat: {entry.format}")


images_app = typer.Typer(
    help="The image cache: each tag's digest, size, when it was pulled and which instances "
    "use it, and the images built from Dockerfiles (images prune, images rm to delete).",
    invoke_without_command=True,
    no_args_is_help=False,
)


@images_app.callback()
def images(
    ctx: typer.Context,
    *,
    available: Annotated[
        bool, typer.Option("--available", help="List the registry's images instead.")
    ] = False,
    layers: Annotated[
        bool,
        typer.Option(
            "--layers", help="List every build layer: what made it, its parent, who needs it."
        ),
    ] = False,
    user: options.UserOption = False,
    system: options.SystemOption = False,
) -> None:
    """List cached images: tag, digest, size, pulled (or built) when, used by (instances'
    overlays; `build <project>/<service>` for a registry image a build is based on)."""
    if ctx.invoked_subcommand is not None:
        return
    if available and layers:
        raise typer.BadParameter("--available and --layers list different things: pick one")
    if available:
        return _catalogue()
    cache = puller.open_cache(_cache_dir(user, system))
    built = Layers(cache)
    used = built.used()
    if layers:
        return _layers(built, used)
    users = layercache.merged(cache.users(), layercache.blob_users(built, used))
    tagged = cache.tagged()
    rows = [("IMAGE", "DIGEST", "SIZE", "PULLED", "USED BY")]
    shown = set()
    for ref, digest in [*tagged.items(), *((None, d) for d in cache.digests())]:
        if ref is None and digest in shown:
            continue
        shown.add(digest)
        record = cache.read_record(digest)
        size = human_size(record.size) if record else "?"
        pulled = record.pulled if record and record.pulled else "-"
        short = record.short if record else digest[:19]
        used_by = ",".join(users.get(digest, [])) or "-"
        rows.append((ref or "<none>", short, size, pulled, used_by))
    for image in layercache.images(built, used):
        size = human_size(image.size)
        used_by = ",".join(image.instances) or "-"
        rows.append((image.name, image.key[:12], size, image.created, used_by))
    _table(rows)


def _layers(built: Layers, used: layercache.Users) -> None:
    rows = [("LAYER", "MADE BY", "SIZE", "PARENT", "USED BY")]
    for layer in layercache.all_layers(built, used):
        parent = layer.parent[:12] if len(layer.parent) == 64 else _short(layer.parent)
        used_by = ",".join(layer.users) or "-"
        rows.append(
            (layer.key[:12], excerpt(layer.made_by), human_size(layer.size), parent, used_by)
        )
    _table(rows)


def excerpt(text: str, width: int = 40) -> str:
    line = " ".join(text.split())
    return line if len(line) <= width else line[: width - 3] + "..."


def _short(digest: str) -> str:
    """sha256:1a2b3c4d5e6f for a digest; anything else (a local file) as it is."""
    algorithm, _, value = digest.partition(":")
    return f"{algorithm}:{value[:12]}" if algorithm in imagecache.ALGORITHMS else digest


def _catalogue() -> None:
    rows = [("NAME", "TAG", "DEFAULT", "FORMAT", "OS", "USER")]
    for entry in registry.REGISTRY:
        default = "yes" if entry.default else "no"
        rows.append((entry.name, entry.tag, default, entry.format, entry.os, entry.user))
    _table(rows)


def _table(rows: Sequence[tuple[str, ...]]) -> None:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        print(
            "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        )


@images_app.command("prune")
def prune(
    *,
    all_: Annotated[
        bool,
        typer.Option("--all", "-a", help="Also delete tagged images and builds no instance uses."),
    ] = False,
    user: options.UserOption = False,
    system: options.SystemOption = False,
) -> None:
    """Delete cached images no instance uses: untagged ones (tags moved on by a pull), build
    layers no build or instance needs, or with --all every unused image and build. An image
    or layer an instance's disk or a kept build is based on is never deleted."""
    cache = puller.open_cache(_cache_dir(user, system))
    with puller.errors(), cache.locked(shared=False):
        built = Layers(cache)
        freed = _prune_builds(built, all_)
        users = layercache.merged(cache.users(), layercache.blob_users(built, built.used()))
        tagged = set(cache.tagged().values())
        for digest in cache.digests():
            record = cache.read_record(digest)
            label = record.short if record else digest[:19]
            if digest in users:
                if all_ or digest not in tagged:
                    print(f"kept {label}: used by {', '.join(users[digest])}")
                continue
            if digest in tagged and not all_:
                continue
            freed += cache.blob(digest).stat().st_size
            cache.remove(digest)
            print(f"removed {label}")
    print(f"freed {human_size(freed)}")


def _prune_builds(built: Layers, all_: bool) -> int:
    pruned = layercache.prune(built, all_=all_)
    for tag in pruned.tags:
        print(f"removed build {tag}: no instance uses it")
    for layer in pruned.layers:
        print(f"removed layer {layer.key[:12]}: {excerpt(layer.made_by)}")
    for kept in pruned.kept:
        below = f" and {kept.depth - 1} below" if kept.depth > 1 else ""
        print(f"kept layer {kept.key[:12]}{below}: used by {', '.join(kept.users)}")
    return pruned.freed


@images_app.command("rm")
def remove(
    refs: Annotated[
        list[str],
        typer.Argument(metavar="IMAGE", help="Tag (ubuntu:noble) or digest (sha256:abc...)."),
    ],
    *,
    user: options.UserOption = False,
    system: options.SystemOption = False,
) -> None:
    """Delete cached images and their tags; refuses an image an instance or a build uses."""
    cache = puller.open_cache(_cache_dir(user, system))
    with puller.errors(), cache.locked(shared=False):
        digests = [_find(cache, ref) for ref in refs]
        built = Layers(cache)
        users = layercache.merged(cache.users(), layercache.blob_bases(built, built.used()))
        refused = [
            f"{ref} is used by {', '.join(users[digest])}"
            for ref, digest in zip(refs, digests, strict=True)
            if digest in users
        ]
        if refused:
            hint = _rm_hint([u for d in digests for u in users.get(d, [])])
            raise ImageError(f"not removed: {'; '.join(refused)} (hint: {hint})")
        for digest in dict.fromkeys(digests):
            cache.remove(digest)
            print(f"removed {digest[:19]}")


def _rm_hint(users: list[str]) -> str:
    hints = []
    if any("/" in u and " " not in u for u in users):
        hints.append("holosc down those projects first")
    if any(layercache.is_build(u) for u in users):
        hints.append("holosc images prune --all deletes the builds no instance uses")
    if any(u.startswith("unused layer ") for u in users):
        hints.append("holosc images prune deletes unused layers")
    return "; ".join(hints)


def _find(cache: imagecache.Cache, ref: str) -> str:
    """The digest a tag names, or the one cached digest that starts with `ref`."""
    if ref.partition(":")[0] in imagecache.ALGORITHMS:
        matches = [d for d in cache.digests() if d.startswith(ref)]
        if len(matches) == 1:
            return matches[0]
        raise ImageError(f"{ref!r} is ambiguous" if matches else f"no cached image {ref}")
    digest = cache.tag_digest(puller.entry_for(ref).ref)
    if digest is None:
        raise ImageError(f"no cached image {ref}")
    return digest


def verify(
    refs: Annotated[
        list[str] | None,
        typer.Argument(
            metavar="IMAGE", help="Registry images, e.g. ubuntu:noble.", show_default=False
        ),
    ] = None,
    *,
    all_: Annotated[
        bool, typer.Option("--all", help="Verify every cached registry image.")
    ] = False,
    user: options.UserOption = False,
    system: options.SystemOption = False,
) -> None:
    """Re-hash cached images against the checksums recorded when they were pulled (offline).

    Exit 1 when an image is corrupt, missing or has no recorded checksum."""
    if all_ and refs:
        raise typer.BadParameter("verify --all does not accept image arguments")
    if not all_ and not refs:
        raise typer.BadParameter("verify requires an image name or --all")
    cache = _cache_dir(user, system)
    entries = list(registry.REGISTRY) if all_ else [puller.entry_for(r) for r in refs or ()]
    results = (puller.verify(entry, cache) for entry in entries)
    failed = 0
    for result in results:
        if all_ and result.status is puller.VerifyStatus.NOT_CACHED:
            print(f"{result.entry.ref}: skipped (not cached)")
            continue
        failed += not result.ok
        print(verify_line(result), file=sys.stdout if result.ok else sys.stderr)
    if failed:
        raise typer.Exit(int(ExitCode.DRIFT))


def verify_line(result: puller.VerifyResult) -> str:
    ref, status = result.entry.ref, puller.VerifyStatus
    if result.status is status.OK:
        return f"{ref}: verified {result.algorithm}:{result.actual[:16]} {result.path}"
    if result.status is status.NOT_CACHED:
        return f"{ref}: not cached (run 'holosc pull {ref}')"
    got = result.detail or f"expected {result.expected}, got {result.actual}"
    return f"{ref}: CORRUPT {result.path}: {result.algorithm} mismatch: {got}"


def human_size(size: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            break
        size /= 1024
    return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"


class ProgressReport:
    """Renders pull progress: a redrawn bar on a terminal, a few plain lines otherwise."""

    INTERVAL = 0.1  # seconds between redraws; a 1 MiB chunk can arrive every millisecond

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream
        self.tty = stream.isatty()
        self.started = self.drawn = 0.0

    def __call__(self, event: puller.Progress) -> None:
        stage, ref = puller.Stage, event.image.ref
        if event.stage is stage.CHECKSUM:
            self.line(f"{ref}: fetching checksum {event.url}")
        elif event.stage is stage.REUSED:
            self.line(f"{ref}: up to date ({human_size(event.done)} cached)")
        elif event.stage is stage.DOWNLOAD and event.done == 0:
            self.started = time.monotonic()
            size = human_size(event.total) if event.total is not None else "unknown size"
            self.line(f"{ref}: downloading {event.url} ({size})")
        elif event.stage is stage.DOWNLOAD and self.tty:
            self.bar(event)
        elif event.stage is stage.DONE:
            if self.tty:
                streams.control("\r\033[K", self.stream)
            rate = human_size(event.done / max(time.monotonic() - self.started, 1e-6))
            self.line(f"{ref}: verified {human_size(event.done)} at {rate}/s")

    def line(self, text: str) -> None:
        self.stream.write(text + "\n")
        self.stream.flush()

    def bar(self, event: puller.Progress) -> None:
        now = time.monotonic()
        if now - self.drawn < self.INTERVAL and event.done != event.total:
            return
        self.drawn = now
        speed = event.done / max(now - self.started, 1e-6)
        text = f"{human_size(event.done)}"
        if event.total:
            fraction = min(event.done / event.total, 1.0)
            width = max(10, min(40, shutil.get_terminal_size().columns - 60))
            filled = int(fraction * width)
            eta = (event.total - event.done) / speed if speed else 0
            text = (
                f"{fraction:4.0%} [{'#' * filled}{'.' * (width - filled)}] {text}"
                f"/{human_size(event.total)}  ETA {int(eta) // 60}:{int(eta) % 60:02d}"
            )
        ref = terminal_safe(event.image.ref, one_line=True)
        streams.control(f"\r\033[K{ref} {text}  {human_size(speed)}/s", self.stream)
        self.stream.flush()
