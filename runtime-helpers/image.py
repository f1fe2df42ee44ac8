"""holos-image: images for the compiled units (the image units and launch.sh).

Usage::

    holos-image ensure --ref REF --url URL --checksum-url URL --algorithm ALG
                       [--format FMT] [--cache DIR] [--mirror URL] [--stall-timeout S]
    holos-image overlay --disk PATH --format FMT [--size SIZE]
                        (--ref REF --images DIR | --build P/SERVICE --images DIR | --file PATH)

``ensure`` is the ExecStart= of an image unit: when the cache (default: the unit's
$STATE_DIRECTORY) has REF tagged, it exits at once without touching the network;
otherwise it downloads the image, verifies it against the upstream checksum file and
tags it, logging progress (one line per 10 %). $HOLOSC_IMAGE_MIRROR (e.g. set with
`systemctl set-environment`) replaces scheme and host of both URLs.

``overlay`` is run by launch.sh before QEMU. The first time, it creates the instance's
qcow2 overlay on the blob REF points at (relative backing path, so the overlay keeps
that digest for life), on the layer a service's build tag names (holos-bake made it), or
on a local image FILE, whose size, mtime and inode it records
in `<disk>.base`. Later starts check that record and refuse to boot on a local image
that was replaced or modified since: the overlay would read changed blocks as its own.
Before the overlay is created, and at every start, the chain below it is checked
(holos_runtime.qcow2): only the overlay and the cache's build layers may name a backing
file; a registry blob or local image that names a backing or data file (a host file
QEMU would put inside the guest's disk) is refused.

Exit codes: 0 ok, 1 failure (one line on stderr saying what to do), 2 usage.
Standard library only; never imports the compiler.
"""

from __future__ import annotations

import argparse
import os
import secrets
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from holos_runtime import fetch, qcow2
from holos_runtime.imagecache import Cache, Legacy
from holos_runtime.layers import Layers

PROG = "holos-image"
NEW_FILE = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC


class Failure(Exception):
    pass


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog=PROG, description="Images for holos units.")
    commands = parser.add_subparsers(dest="command", required=True)
    ensure = commands.add_parser("ensure", help="make sure an image is cached and verified")
    ensure.add_argument("--ref", required=True)
    ensure.add_argument("--url", required=True)
    ensure.add_argument("--checksum-url", required=True)
    ensure.add_argument("--algorithm", required=True, choices=sorted(fetch.HEX_LENGTH))
    ensure.add_argument("--format", default="qcow2")
    ensure.add_argument("--cache", type=Path)
    ensure.add_argument("--mirror", default=None)
    ensure.add_argument("--stall-timeout", type=float, default=60.0)
    overlay = commands.add_parser("overlay", help="create or check an instance's overlay")
    overlay.add_argument("--disk", required=True, type=Path)
    overlay.add_argument("--format", required=True, choices=("qcow2", "raw"))
    overlay.add_argument("--size", default=None)
    source = overlay.add_mutually_exclusive_group(required=True)
    source.add_argument("--ref")
    source.add_argument("--build")
    source.add_argument("--file", type=Path)
    overlay.add_argument("--images", type=Path)
    return parser.parse_args(argv)


# -- ensure ------------------------------------------------------------------------------


class JournalProgress:
    """Plain lines for the journal: start, every 10 %, done."""

    def __init__(self) -> None:
        self.started = time.monotonic()
        self.step = 0

    def __call__(self, event: fetch.Progress) -> None:
        ref, stage = event.image.ref, fetch.Stage
        if event.stage is stage.DOWNLOAD and event.done == 0:
            self.started = time.monotonic()
            size = f"{event.total / 2**20:.0f} MiB" if event.total else "unknown size"
            say(f"{ref}: downloading {event.url} ({size})")
        elif event.stage is stage.DOWNLOAD and event.total:
            step = event.done * 10 // event.total
            if step > self.step:
                self.step = step
                say(f"{ref}: {step * 10}% ({event.done / 2**20:.0f} MiB, {self.rate(event)})")
        elif event.stage is stage.DONE:
            say(f"{ref}: verified {event.done / 2**20:.0f} MiB ({self.rate(event)})")

    def rate(self, event: fetch.Progress) -> str:
        return f"{event.done / 2**20 / max(time.monotonic() - self.started, 1e-6):.1f} MiB/s"


def ensure(args: argparse.Namespace) -> None:
    cache = Cache(args.cache or images_dir())
    source = fetch.Source(args.ref, args.url, args.checksum_url, args.algorithm, args.format)
    try:
        cache.migrate([Legacy(source.ref, source.algorithm, source.format)])
        record = fetch.ensure(
            source,
            cache,
            progress=JournalProgress(),
            timeouts=fetch.Timeouts(stall=args.stall_timeout),
            mirror=args.mirror,
        )
    except fetch.FetchError as exc:
        raise Failure(
            f"{source.ref}: {exc} (the cache has no copy yet: connect this host, set "
            f"{fetch.MIRROR_ENV} for the manager, or copy the image in with holosc pull)"
        ) from exc
    except OSError as exc:
        raise Failure(f"{source.ref}: cannot use the image cache {cache.root}: {exc}") from exc
    say(f"{source.ref}: {record.short} ({record.size / 2**20:.0f} MiB) ready")


def images_dir(option: str = "--cache") -> Path:
    """The images directory among $STATE_DIRECTORY (its order is not kept by systemd)."""
    for entry in os.environ.get("STATE_DIRECTORY", "").split(":"):
        if entry.endswith("/holos/images"):
            return Path(entry)
    raise Failure(f"no holos/images directory in STATE_DIRECTORY: pass {option}")


# -- overlay -----------------------------------------------------------------------------


def overlay(args: argparse.Namespace) -> None:
    try:
        if args.disk.exists():
            check_disk(args)
        elif args.file is not None:
            qcow2.require_self_contained(args.file, args.format, f"image {args.file}")
            write_stamp(args.file, args.disk.with_name(args.disk.name + ".base"))
            create(args.disk, str(args.file), args.format, args.size)
        elif args.images is None:
            raise Failure("overlay --ref and --build need --images")
        elif args.build is not None:
            overlay_on_build(Cache(args.images), args)
        else:
            overlay_on_ref(Cache(args.images), args)
    except qcow2.UnsafeImage as exc:
        raise Failure(
            f"{exc}: QEMU would open that with the guest's disk, so the instance does not "
            "start (a self-contained copy: qemu-img convert -O qcow2 IMAGE NEW)"
        ) from None


def check_disk(args: argparse.Namespace) -> None:
    """An existing disk: its local image unchanged, its chain still what holosc made."""
    disk: Path = args.disk
    if args.file is not None:
        check_stamp(args.file, disk.with_name(disk.name + ".base"), disk)
    layers = Layers(Cache(args.images)) if args.images is not None else None

    def own(path: Path) -> bool:
        return path == disk or (layers is not None and layers.owns(path))

    qcow2.check_chain(disk, "qcow2", own, f"disk {disk}")


def overlay_on_ref(cache: Cache, args: argparse.Namespace) -> None:
    """The disk of a registry image's instance: on the blob its tag names."""
    disk: Path = args.disk
    with cache.locked(shared=True):  # no prune between resolving the tag and the overlay
        record = cache.resolve(args.ref)
        if record is None:
            raise Failure(
                f"image {args.ref} is not in the cache {cache.root}: start the project "
                f"(its image unit fetches it) or run holosc pull {args.ref}"
            )
        blob = cache.blob(record.digest)
        qcow2.require_self_contained(blob, args.format, f"image {args.ref} ({record.short})")
        create(disk, os.path.relpath(blob, disk.parent), args.format, args.size)
    say(f"{disk.parent.name}: new disk on {args.ref} ({record.short})")


def overlay_on_build(cache: Cache, args: argparse.Namespace) -> None:
    """The disk of a `dockerfile:` service's instance: on the layer its build tag names."""
    project, _, service = args.build.partition("/")
    layers = Layers(cache)
    with cache.locked(shared=True):  # no prune between resolving the tag and the overlay
        key = layers.tagged(project, service)
        if key is None or layers.record(key) is None:
            raise Failure(
                f"the image of {project}/{service} is not built: its build unit "
                f"(holos-{project}-{service}-build.service) builds it, or run holosc bake"
            )
        layers.check(key, f"the build of {args.build}")
        create(args.disk, os.path.relpath(layers.path(key), args.disk.parent), "qcow2", args.size)
    say(f"{args.disk.parent.name}: new disk on the build of {args.build} ({key[:12]})")


def create(disk: Path, backing: str, fmt: str, size: str | None) -> None:
    """The overlay, written under a new name (qemu-img create would follow a symlink and
    truncate what is there) and renamed into place."""
    tmp = disk.with_name(f".{disk.name}.{secrets.token_hex(8)}")
    os.close(os.open(tmp, NEW_FILE, 0o600))
    argv = ["qemu-img", "create", "-q", "-f", "qcow2", "-F", fmt, "-b", backing, str(tmp)]
    try:
        result = subprocess.run(argv + ([size] if size else []), capture_output=True, text=True)
        if result.returncode != 0:
            raise Failure(f"qemu-img create {disk} failed: {result.stderr.strip()}")
        os.replace(tmp, disk)
    finally:
        tmp.unlink(missing_ok=True)


def identity(path: Path) -> dict[str, int]:
    """What changes when a file is modified or replaced: cheap at any size (one stat)."""
    try:
        st = path.stat()
    except FileNotFoundError:
        raise Failure(f"image {path} does not exist") from None
    return {"size": st.st_size, "mtime_ns": st.st_mtime_ns, "inode": st.st_ino}


def write_stamp(image: Path, stamp: Path) -> None:
    text = " ".join(f"{k}={v}" for k, v in identity(image).items()) + "\n"
    tmp = stamp.with_name(f".{stamp.name}.{secrets.token_hex(8)}")
    with open(os.open(tmp, NEW_FILE, 0o600), "w") as stream:
        stream.write(text)
    os.replace(tmp, stamp)


def stamp_changes(image: Path, stamp: Path) -> list[str] | None:
    """What changed in `image` since `stamp` was written ("mtime_ns 1 -> 2"), or None
    when there is no readable stamp."""
    now = identity(image)
    try:
        recorded = dict(pair.split("=", 1) for pair in stamp.read_text().split())
    except (OSError, ValueError):
        return None
    return [f"{k} {recorded.get(k)} -> {v}" for k, v in now.items() if recorded.get(k) != str(v)]


def check_stamp(image: Path, stamp: Path, disk: Path) -> None:
    changed = stamp_changes(image, stamp)
    if changed is None:
        write_stamp(image, stamp)  # an overlay made before stamps existed: trust it once
        return
    if changed:
        raise Failure(
            f"image {image} changed since {disk} was created on it ({', '.join(changed)}); "
            "booting would corrupt the disk: put the original image back, or start afresh "
            "on the new image with holosc up --recreate (the instance's root disk is "
            "recreated; named volumes stay)"
        )


# -- main --------------------------------------------------------------------------------


def say(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``holos-image``; returns the exit code."""
    try:
        args = parse_args(argv)
    except SystemExit as exc:  # argparse exits 2 on usage errors, 0 on --help
        return exc.code if isinstance(exc.code, int) else 2
    try:
        ensure(args) if args.command == "ensure" else overlay(args)
    except Failure as exc:
        say(f"{PROG}: {exc}")
        return 1
    except KeyboardInterrupt:
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
