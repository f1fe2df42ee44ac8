"""Built images in the cache: `holosc images` lists them, prune and rm respect them.

Real qcow2 chains made by qemu-img in a temporary cache, as holos-bake makes them: each
layer created in a work directory on the absolute path of the one below, written to
(qemu-io), renamed to its relative backing name (`qemu-img rebase -u`) and committed with
holos_runtime.layers; instance overlays made by `holos-image overlay --build`. No VM.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from holos_runtime.imagecache import Cache
from holos_runtime.layers import LayerRecord, Layers, chain

from holosc.cli.images import human_size
from tests.conftest import require_tool

HELPER = str(Path(sys.executable).parent / "holos-image")


@pytest.fixture
def cache(tmp_path: Path) -> Cache:
    return Cache(tmp_path / "images").create()


def holosc(state: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, HOLOSC_STATE_DIR=str(state))
    return subprocess.run(
        [sys.executable, "-m", "holosc", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def qemu_img(*args: str | Path) -> None:
    subprocess.run([require_tool("qemu-img"), *map(str, args)], check=True, capture_output=True)


def base_image(cache: Cache, ref: str, seed: int) -> str:
    """A small real qcow2 adopted into the cache as `ref`; returns its digest."""
    raw = cache.root.parent / f"base-{seed}.raw"
    raw.write_bytes(bytes([seed]) * (1 << 20))
    image = raw.with_suffix(".qcow2")
    qemu_img("convert", "-f", "raw", "-O", "qcow2", raw, image)
    return cache.adopt(image, ref, "sha256", "qcow2").digest


def build(
    cache: Cache, base: str, steps: list[str], service: str, *, tag: bool = True
) -> list[str]:
    """Layers for `steps` on the blob `base` (or on the layer key `base`), as holos-bake
    commits them; returns their keys, bottom first. Tags the last as p/<service>."""
    layers = Layers(cache)
    parent = base
    keys = []
    for index, made_by in enumerate(steps):
        key = chain(parent, made_by)
        work = layers.work_dir()
        built = work / f"{key}.qcow2"
        if parent.startswith("sha256:"):
            below, final = cache.blob(parent), os.path.relpath(cache.blob(parent), layers.root)
        else:
            below, final = layers.path(parent), f"{parent}.qcow2"
        qemu_img("create", "-q", "-f", "qcow2", "-F", "qcow2", "-b", below, built)
        data = f"write -P {0x10 + index} {index * 64}k {64 * (index + 1)}k"
        subprocess.run(
            [require_tool("qemu-io"), "-c", data, built], check=True, capture_output=True
        )
        qemu_img("rebase", "-u", "-f", "qcow2", "-F", "qcow2", "-b", final, built)
        with cache.locked(shared=True):
            layers.commit(built, LayerRecord(key, parent, made_by, "p", service, f"T{index}"))
        work.rmdir()
        parent = key
        keys.append(key)
    if tag:
        layers.set_tag("p", service, keys[-1])
    return keys


def instance(state: Path, name: str, service: str) -> Path:
    disk = state / "instances" / "p" / name / "root.qcow2"
    disk.parent.mkdir(parents=True, exist_ok=True)
    argv = [HELPER, "overlay", "--disk", str(disk), "--format", "qcow2", "--build", f"p/{service}"]
    result = subprocess.run(
        [*argv, "--images", str(state / "images")], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr
    return disk


def chain_opens(disk: Path) -> bool:
    """qemu-img opens the overlay and every file below it."""
    argv = [require_tool("qemu-img"), "info", "--backing-chain", str(disk)]
    return subprocess.run(argv, capture_output=True, check=False).returncode == 0


def layer_files(cache: Cache) -> set[str]:
    return {p.name for p in (cache.root / "layers").iterdir() if not p.name.startswith(".")}


def files_of(keys: list[str]) -> set[str]:
    return {f"{k}.{ext}" for k in keys for ext in ("qcow2", "json")}


def cells(stdout: str) -> list[list[str]]:
    """The table's cells (columns are separated by two spaces or more)."""
    return [[c.strip() for c in line.split("  ") if c.strip()] for line in stdout.splitlines()]


# -- listing -----------------------------------------------------------------------------


def test_images_lists_builds_and_their_layers(tmp_path: Path, cache: Cache) -> None:
    blob = base_image(cache, "ubuntu:noble", 1)
    web = build(cache, blob, ["RUN apt-get update", "COPY index.html /srv/", "seal"], "web")
    api = build(cache, web[0], ["RUN " + "make " * 20, "seal"], "api")  # shares web's first
    web0, web1 = instance(tmp_path, "web-0", "web"), instance(tmp_path, "web-1", "web")
    assert chain_opens(web0) and chain_opens(web1)
    size = {k: (cache.root / "layers" / f"{k}.qcow2").stat().st_size for k in web + api}

    listing = holosc(tmp_path, "images")

    assert listing.returncode == 0, listing.stderr
    table = cells(listing.stdout)
    assert table[0] == ["IMAGE", "DIGEST", "SIZE", "PULLED", "USED BY"]
    assert table[1][0] == "ubuntu:noble"
    assert table[1][-1] == "build p/api,build p/web,p/web-0,p/web-1"  # the base of both
    assert [r[:2] + r[3:] for r in table[2:]] == [
        ["build p/api", api[-1][:12], "T1", "-"],
        ["build p/web", web[-1][:12], "T2", "p/web-0,p/web-1"],
    ]
    assert table[3][2] == human_size(sum(size[k] for k in web))  # the chain above the base

    listing = holosc(tmp_path, "images", "--layers")

    assert listing.returncode == 0, listing.stderr
    table = cells(listing.stdout)
    assert table[0] == ["LAYER", "MADE BY", "SIZE", "PARENT", "USED BY"]
    assert [(r[0], r[1], r[3], r[4]) for r in table[1:]] == [
        (web[0][:12], "RUN apt-get update", blob[:19], "build p/api,build p/web,p/web-0,p/web-1"),
        (api[0][:12], "RUN make make make make make make mak...", web[0][:12], "build p/api"),
        (api[1][:12], "seal", api[0][:12], "build p/api"),
        (web[1][:12], "COPY index.html /srv/", web[0][:12], "build p/web,p/web-0,p/web-1"),
        (web[2][:12], "seal", web[1][:12], "build p/web,p/web-0,p/web-1"),
    ]


# -- prune -------------------------------------------------------------------------------


def rebuilt_cache(tmp_path: Path, cache: Cache) -> dict[str, list[str]]:
    """web built, instance web-0 created, then web rebuilt after an edit of its second
    step (the tag moves on; web-0 stays on the old image), a failed build left a layer,
    an unused chain on debian:12, and a pull moved ubuntu:noble on (its old blob is
    untagged now, but the builds are on it)."""
    old = base_image(cache, "ubuntu:noble", 1)
    web = build(cache, old, ["RUN apt-get update", "RUN make", "seal"], "web")
    instance(tmp_path, "web-0", "web")
    edited = build(cache, web[0], ["RUN make install", "seal"], "web")
    failed = build(cache, web[0], ["RUN false-start"], "web", tag=False)
    debian = base_image(cache, "debian:12", 2)
    unused = build(cache, debian, ["RUN apk add x", "seal"], "tools", tag=False)
    base_image(cache, "ubuntu:noble", 3)
    return {"web": web, "edited": edited, "failed": failed, "unused": unused, "old": [old]}


def test_prune_removes_layers_nothing_uses_and_keeps_what_builds_and_disks_need(
    tmp_path: Path, cache: Cache
) -> None:
    made = rebuilt_cache(tmp_path, cache)
    web, edited, old = made["web"], made["edited"], made["old"][0]

    pruned = holosc(tmp_path, "images", "prune")

    assert pruned.returncode == 0, pruned.stderr
    assert layer_files(cache) == files_of(web + edited)
    assert cache.blob(old).exists()  # untagged, but both builds are on it
    assert {d.split(":")[0] for d in cache.digests()} == {"sha256"} and len(cache.digests()) == 3
    lines = pruned.stdout.splitlines()
    removed = {f"removed layer {k[:12]}" for k in made["failed"] + made["unused"]}
    assert {line.split(":")[0] for line in lines if line.startswith("removed")} == removed
    assert f"kept layer {edited[-1][:12]} and 2 below: used by build p/web" in lines
    assert f"kept layer {web[-1][:12]} and 2 below: used by p/web-0" in lines
    assert f"kept sha256:{old[7:19]}: used by build p/web, p/web-0" in lines
    assert chain_opens(tmp_path / "instances" / "p" / "web-0" / "root.qcow2")
    assert holosc(tmp_path, "images", "prune").stdout.count("removed") == 0  # nothing left
    assert instance(tmp_path, "web-1", "web").exists()  # the tag's image still makes disks


def test_prune_all_drops_builds_no_instance_uses(tmp_path: Path, cache: Cache) -> None:
    made = rebuilt_cache(tmp_path, cache)
    web, old = made["web"], made["old"][0]
    api = build(cache, web[0], ["RUN make api", "seal"], "api")
    instance(tmp_path, "api-0", "api")

    pruned = holosc(tmp_path, "images", "prune", "--all")

    assert pruned.returncode == 0, pruned.stderr
    assert "removed build p/web: no instance uses it" in pruned.stdout.splitlines()
    assert Layers(cache).all_tags() == {"p/api": api[-1]}
    assert layer_files(cache) == files_of(web + api)  # the old image web-0 is on stays
    assert cache.digests() == [old]  # the tagged, unused registry images went
    assert f"kept sha256:{old[7:19]}: used by build p/api, p/api-0, p/web-0" in pruned.stdout
    for name in ("web-0", "api-0"):
        assert chain_opens(tmp_path / "instances" / "p" / name / "root.qcow2")


def test_prune_waits_for_a_build_or_overlay_holding_the_shared_lock(
    tmp_path: Path, cache: Cache
) -> None:
    blob = base_image(cache, "ubuntu:noble", 1)
    orphan = build(cache, blob, ["RUN x"], "web", tag=False)
    env = dict(os.environ, HOLOSC_STATE_DIR=str(tmp_path))
    with cache.locked(shared=True):
        pruner = subprocess.Popen(
            [sys.executable, "-m", "holosc", "images", "prune"], env=env, stdout=subprocess.PIPE
        )
        with pytest.raises(subprocess.TimeoutExpired):
            pruner.wait(timeout=1.5)
        assert layer_files(cache) == files_of(orphan)
    assert pruner.wait(timeout=60) == 0
    assert layer_files(cache) == set()


# -- rm ----------------------------------------------------------------------------------


def test_rm_refuses_a_blob_builds_are_based_on(tmp_path: Path, cache: Cache) -> None:
    ubuntu = base_image(cache, "ubuntu:noble", 1)
    build(cache, ubuntu, ["RUN apt-get update", "seal"], "web")
    debian = base_image(cache, "debian:12", 2)
    orphan = build(cache, debian, ["RUN x"], "tools", tag=False)  # a failed build's layer

    refused = holosc(tmp_path, "images", "rm", "ubuntu:noble", debian[:19])

    assert refused.returncode == 5
    assert (
        f"not removed: ubuntu:noble is used by build p/web; {debian[:19]} is used by unused "
        f"layer {orphan[0][:12]} (hint: " in refused.stderr
    ), refused.stderr
    assert cache.digests() == sorted([ubuntu, debian])
    assert holosc(tmp_path, "images", "prune").returncode == 0  # the unused layer goes
    removed = holosc(tmp_path, "images", "rm", "debian:12")
    assert removed.returncode == 0, removed.stderr
    assert cache.digests() == [ubuntu]
