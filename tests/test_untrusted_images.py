"""Images are data from strangers (issue 22, class 1).

A qcow2 header can name a backing file or an external data file, and QEMU opens what it
names with the guest's disk: `qemu-img create -f qcow2 -F raw -b /root/secret img.qcow2`
served by a mirror would put /root/secret inside the guest. Every way an image reaches
holosc refuses such a file before it is cached or booted: a pull (holosc and the image
unit's helper, from a local mirror), a local `image:`, a disk made on a bad blob by an
older holosc, a build's base (local or registry), a layer chain that leaves the cache,
and a file of the old cache layout. The images are made by this host's real qemu-img,
and holosc's own header reader is checked against `qemu-img info`.
"""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from holos_runtime import bake, layers, qcow2
from holos_runtime.imagecache import Cache, Legacy, Record

from tests.conftest import require_tool, run_holosc
from tests.test_bake import cache_with_base, compiled_spec, fill
from tests.test_pull import (  # noqa: F401  (server and site are fixtures)
    UBUNTU,
    Site,
    blob_files,
    cache_listing,
    gnu,
    holosc,
    publish,
    server,
    site,
)

HELPER = str(Path(sys.executable).parent / "holos-image")
SECRET = b"the host's secret\n"


def qemu_img(*args: str | Path) -> None:
    subprocess.run([require_tool("qemu-img"), *map(str, args)], check=True, capture_output=True)


def backing(image: Path, secret: Path) -> None:
    qemu_img("create", "-q", "-f", "qcow2", "-F", "raw", "-b", secret, "-u", image, "4M")


def data_file(image: Path, secret: Path) -> None:
    # qemu-img creates the data file it is given: make it on a scratch file, then rename
    # it in the header to the secret (amend writes the header only).
    scratch = image.with_name(image.name + ".data")
    qemu_img(
        "create", "-q", "-f", "qcow2", "-o", f"data_file={scratch},data_file_raw=on", image, "4M"
    )
    qemu_img("amend", "-f", "qcow2", "-o", f"data_file={secret}", image)
    scratch.unlink()


def json_backing(image: Path, secret: Path) -> None:
    name = json.dumps({"driver": "raw", "file": {"driver": "file", "filename": str(secret)}})
    qemu_img("create", "-q", "-f", "qcow2", "-F", "raw", "-b", f"json:{name}", "-u", image, "4M")


HOSTILE: dict[str, tuple[Callable[[Path, Path], None], str]] = {
    "backing": (backing, "names a backing file"),
    "data-file": (data_file, "names an external data file"),
    "json": (json_backing, 'names a backing file "json:{'),
}


def hostile(directory: Path, kind: str, name: str = "evil.qcow2") -> Path:
    """A qcow2 image whose header names the host file `directory/secret`."""
    directory.mkdir(parents=True, exist_ok=True)
    secret = directory / "secret"
    secret.write_bytes(SECRET)
    image = directory / name
    HOSTILE[kind][0](image, secret)
    return image


def overlay(state: Path, *args: str) -> subprocess.CompletedProcess[str]:
    disk = state / "instances" / "p" / "web-0" / "root.qcow2"
    disk.parent.mkdir(parents=True, exist_ok=True)
    argv = [HELPER, "overlay", "--disk", str(disk), "--format", "qcow2", *args]
    return subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False)


# -- the header reader -------------------------------------------------------------------


def test_the_header_reader_agrees_with_qemu_img(tmp_path: Path) -> None:
    made = {kind: hostile(tmp_path / kind, kind) for kind in HOSTILE}
    plain = {
        "v3": ("-o", "compat=1.1"),
        "v2": ("-o", "compat=0.10"),
        "small-clusters": ("-o", "cluster_size=512"),
        "large-clusters": ("-o", "cluster_size=2M,extended_l2=on"),
        "zstd": ("-o", "compression_type=zstd"),
    }
    for name, options in plain.items():
        made[name] = tmp_path / f"{name}.qcow2"
        qemu_img("create", "-q", "-f", "qcow2", *options, made[name], "4M")
    made["overlay"] = tmp_path / "overlay.qcow2"
    qemu_img("create", "-q", "-f", "qcow2", "-F", "qcow2", "-b", "v3.qcow2", made["overlay"])
    for name, image in made.items():
        argv = [require_tool("qemu-img"), "info", "-f", "qcow2", "-U", "--output=json", image]
        info = json.loads(subprocess.run(argv, capture_output=True, check=True).stdout)
        header = qcow2.read_header(image)
        assert header.backing == info.get("backing-filename"), name
        assert header.backing_format == info.get("backing-filename-format"), name
        assert header.data_file == info["format-specific"]["data"].get("data-file"), name
    assert qcow2.read_header(made["v2"]).version == 2
    with pytest.raises(qcow2.UnsafeImage, match="is not a qcow2 image"):
        qcow2.read_header(made["backing"].with_name("secret"))


def test_a_fifo_is_refused_without_blocking(tmp_path: Path) -> None:
    fifo = tmp_path / "disk.qcow2"
    os.mkfifo(fifo)
    with pytest.raises(qcow2.UnsafeImage, match="not a regular file or block device"):
        qcow2.require_self_contained(fifo, "qcow2", "image")


# -- pulls -------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", sorted(HOSTILE))
def test_a_pull_refuses_an_image_naming_a_host_file(
    tmp_path: Path,
    site: Site,  # noqa: F811
    kind: str,
) -> None:
    data = hostile(tmp_path / "upstream", kind).read_bytes()
    publish(site, UBUNTU, data, gnu(UBUNTU, data))  # its checksum matches: still refused

    pulled = holosc(tmp_path, site, "pull", "ubuntu:noble")

    assert pulled.returncode == 5, pulled.stderr
    assert f"refused {site.url}/" in pulled.stderr, pulled.stderr
    assert HOSTILE[kind][1] in pulled.stderr and "nothing was cached" in pulled.stderr
    assert "Traceback" not in pulled.stderr
    assert [f for f in cache_listing(tmp_path) if not f.endswith("/build")] == []


def test_the_image_unit_refuses_it_too(tmp_path: Path, site: Site) -> None:  # noqa: F811
    data = hostile(tmp_path / "upstream", "backing").read_bytes()
    publish(site, UBUNTU, data, gnu(UBUNTU, data))
    cache = tmp_path / "images"
    argv = [
        str(Path(sys.executable).parent / "holos-image"), "ensure", "--ref", UBUNTU.ref,
        "--url", UBUNTU.url, "--checksum-url", UBUNTU.checksum_url,
        "--algorithm", UBUNTU.algorithm, "--cache", str(cache), "--mirror", site.url,
    ]  # fmt: skip
    ensured = subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False)

    assert ensured.returncode == 1
    (line,) = [x for x in ensured.stderr.splitlines() if x.startswith("holos-image:")]
    assert "names a backing file" in line and str(tmp_path / "upstream" / "secret") in line
    assert cache_listing(tmp_path) == []


# -- local images and disks --------------------------------------------------------------


@pytest.mark.parametrize("kind", sorted(HOSTILE))
def test_a_local_image_naming_a_host_file_is_refused(tmp_path: Path, kind: str) -> None:
    image = hostile(tmp_path / "project", kind)

    refused = overlay(tmp_path, "--file", str(image))

    assert refused.returncode == 1
    (line,) = refused.stderr.splitlines()
    assert line.startswith(f"holos-image: image {image}: its qcow2 header {HOSTILE[kind][1]}")
    assert "qemu-img convert -O qcow2 IMAGE NEW" in line
    assert list((tmp_path / "instances" / "p" / "web-0").iterdir()) == []


def test_a_disk_an_older_holosc_made_on_a_bad_blob_does_not_start(tmp_path: Path) -> None:
    cache = Cache(tmp_path / "images").create()
    image = hostile(tmp_path / "upstream", "backing")
    digest = "sha256:" + "ab" * 32
    blob = cache.blob(digest)
    blob.parent.mkdir(parents=True, exist_ok=True)
    os.link(image, blob)  # as a pull before this check would have cached it
    record = Record("sha256", "ab" * 32, blob.stat().st_size, UBUNTU.url)
    blob.with_name(blob.name + ".json").write_text(json.dumps(dataclasses.asdict(record)))
    cache.set_tag("ubuntu:noble", digest)
    by_ref = ("--ref", "ubuntu:noble", "--images", str(cache.root))

    new = overlay(tmp_path, *by_ref)
    assert new.returncode == 1 and "names a backing file" in new.stderr, new.stderr

    disk = tmp_path / "instances" / "p" / "web-0" / "root.qcow2"
    qemu_img("create", "-q", "-f", "qcow2", "-F", "qcow2", "-b", blob, "-u", disk, "4M")
    old = overlay(tmp_path, *by_ref)
    assert old.returncode == 1
    assert f"holos-image: disk {disk}: {blob}: its qcow2 header names a backing" in old.stderr


def test_an_old_layout_file_naming_a_host_file_is_not_adopted(tmp_path: Path) -> None:
    cache = Cache(tmp_path / "images")
    hostile(tmp_path / "images", "backing", "ubuntu-noble.qcow2")

    assert cache.migrate([Legacy("ubuntu:noble", "sha256", "qcow2")]) == []
    assert cache.resolve("ubuntu:noble") is None and cache.digests() == []


# -- builds ------------------------------------------------------------------------------

PROJECT = """\
name: p
services:
  web:
    image: ./base.qcow2
    dockerfile: ./Dockerfile
    vm: {cpu_model: CPU}
"""


def bake_project(tmp_path: Path, base: Path, cpu: str = "max") -> subprocess.CompletedProcess[str]:
    """`holosc bake` of a one-step Dockerfile on the local image `base`."""
    project = tmp_path / "project"
    project.mkdir(exist_ok=True)
    if base != project / "base.qcow2":
        os.replace(base, project / "base.qcow2")
    (project / "holos.yaml").write_text(PROJECT.replace("CPU", cpu))
    (project / "Dockerfile").write_text("FROM debian:12\nRUN true\n")
    env = {"HOLOSC_STATE_DIR": str(tmp_path / "state"), "HOLOS_ACCEL": "tcg"}
    return run_holosc("bake", cwd=project, env=env, timeout=300)


@pytest.mark.parametrize("kind", sorted(HOSTILE))
def test_a_build_base_naming_a_host_file_is_refused(tmp_path: Path, kind: str) -> None:
    baked = bake_project(tmp_path, hostile(tmp_path / "project", kind, "base.qcow2"))

    assert baked.returncode == 5, baked.stderr
    assert "holosc: error: build of web failed: base image " in baked.stderr, baked.stderr
    assert HOSTILE[kind][1] in baked.stderr and "must be self-contained" in baked.stderr
    layers_dir = tmp_path / "state" / "images" / "layers"
    assert not layers_dir.exists() or list(layers_dir.iterdir()) == []


def test_a_registry_base_planted_in_the_cache_is_refused(tmp_path: Path) -> None:
    cache = cache_with_base(tmp_path)
    blob = cache.blob(cache.tag_digest("debian:12") or "")
    size = blob.stat().st_size
    blob.unlink()
    backing(blob, hostile(tmp_path / "host", "backing").with_name("secret"))
    os.truncate(blob, size)  # the recorded size: the record still matches

    with pytest.raises(bake.Failure, match="base image debian:12: its qcow2 header names a"):
        bake.plan(compiled_spec(tmp_path), cache, tmp_path)


def test_a_layer_chain_that_leaves_the_cache_is_refused(tmp_path: Path) -> None:
    cache = cache_with_base(tmp_path)
    spec = compiled_spec(tmp_path)
    plan = bake.plan(spec, cache, tmp_path)
    fill(cache, plan, len(plan.steps))
    store = layers.Layers(cache)
    store.set_tag("p", "web", plan.final)
    evil = hostile(tmp_path / "host", "backing")
    first = store.path(plan.steps[0].key)

    bake.rebase(first, str(evil), "qcow2")  # the first layer now rests on a hostile image
    with pytest.raises(bake.Failure, match=f"{evil}: its qcow2 header names a backing file"):
        bake.bake(spec, cache, tmp_path, lambda line: None)
    refused = overlay(tmp_path, "--build", "p/web", "--images", str(cache.root))
    assert refused.returncode == 1 and "the build of p/web: " in refused.stderr, refused.stderr
    assert not (tmp_path / "instances" / "p" / "web-0" / "root.qcow2").exists()

    secret = evil.with_name("secret")
    bake.rebase(first, str(secret), "raw")  # ... or on a host file read as raw
    with pytest.raises(bake.Failure, match=f"they rest on {secret} \\(raw\\), not on "):
        bake.bake(spec, cache, tmp_path, lambda line: None)
