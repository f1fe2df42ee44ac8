"""holos-bake without a VM: layer keys, cache hits, commits and abandoned builds, with
real qcow2 files made by qemu-img in a temporary cache. The builder VM itself (boot,
steps over SSH, snapshots, seal) is covered by tests/e2e/test_build.py with real guests.
"""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
from pathlib import Path, PurePosixPath
from typing import Any

import pytest
from holos_runtime import bake, layers
from holos_runtime.imagecache import Cache, Record

from holosc.core import layout
from holosc.core.compiler import compile_project
from holosc.core.validate.checks import build_project
from holosc.load.files import HostFiles
from holosc.load.parse import load_text
from tests.conftest import require_tool
from tests.privacy import not_private

DOCKERFILE = "FROM debian:12\nENV A=1\nCOPY f.txt /f.txt\nRUN echo one\nRUN echo two\n"


def compiled_spec(tmp_path: Path, dockerfile: str = DOCKERFILE) -> dict[str, Any]:
    """The build file holosc compiles for a one-service project (the real compiler)."""
    (tmp_path / "Dockerfile").write_text(dockerfile)
    (tmp_path / "f.txt").write_text("content\n")
    doc = load_text("name: p\nservices:\n  web: {dockerfile: Dockerfile}\n", directory=tmp_path)
    project = build_project(doc, HostFiles()).project
    files = compile_project(project).files
    data = next(f.data for path, f in files.items() if str(path) == layout.build_spec("p", "web"))
    spec: dict[str, Any] = json.loads(data)
    return spec


def cache_with_base(tmp_path: Path) -> Cache:
    """A cache whose debian:12 tag names a real (small) qcow2 blob."""
    qemu_img = require_tool("qemu-img")
    cache = Cache(tmp_path / "images").create()
    part = cache.part("sha512")
    subprocess.run([qemu_img, "create", "-q", "-f", "qcow2", str(part), "16M"], check=True)
    record = Record("sha512", "ab" * 64, part.stat().st_size, "https://example.test/d.qcow2")
    cache.commit(part, record, "debian:12")
    return cache


def keys(spec: dict[str, Any], cache: Cache, tmp_path: Path) -> list[str]:
    return [s.key for s in bake.plan(spec, cache, tmp_path).steps]


def test_keys_chain_like_dockers_build_cache(tmp_path: Path) -> None:
    cache = cache_with_base(tmp_path)
    spec = compiled_spec(tmp_path)
    first = keys(spec, cache, tmp_path)
    assert len(first) == 4  # COPY, RUN, RUN, then the seal
    assert keys(spec, cache, tmp_path) == first  # deterministic
    # Editing the last RUN: the layers below it keep their keys.
    edited = keys(compiled_spec(tmp_path, DOCKERFILE.replace("two", "three")), cache, tmp_path)
    assert edited[:2] == first[:2] and edited[2] != first[2] and edited[3] != first[3]
    # A comment or blank line moves the steps' line numbers, not their keys.
    moved = keys(compiled_spec(tmp_path, "# hi\n\n" + DOCKERFILE), cache, tmp_path)
    assert moved == first
    # An ENV is part of each later RUN (its script exports it) and of the seal (the image's
    # environment); a COPY does not read it, so its layer stays.
    env = keys(compiled_spec(tmp_path, DOCKERFILE.replace("A=1", "A=2")), cache, tmp_path)
    assert env[0] == first[0] and not set(env[1:]) & set(first)
    # Another base digest: every key changes.
    cache.set_tag("debian:12", "sha512:" + "cd" * 64)
    other = cache.blobs / "sha512" / ("cd" * 64)
    subprocess.run(
        [require_tool("qemu-img"), "create", "-q", "-f", "qcow2", other, "8M"], check=True
    )
    record = Record("sha512", "cd" * 64, other.stat().st_size, "https://example.test/d2.qcow2")
    (cache.blobs / "sha512" / ("cd" * 64 + ".json")).write_text(
        json.dumps(dataclasses.asdict(record))
    )
    assert not set(keys(spec, cache, tmp_path)) & set(first)
    # --no-cache: new keys every time, none equal to the cached ones.
    salted = [s.key for s in bake.plan(spec, cache, tmp_path, no_cache=True).steps]
    assert not set(salted) & set(keys(spec, cache, tmp_path))


TWINS = """\
name: p
services:
  a: {dockerfile: Dockerfile, vm: {A}}
  b: {dockerfile: Dockerfile, vm: {B}}
"""


def twin_keys(tmp_path: Path, cache: Cache, a: str, b: str) -> tuple[list[str], list[str]]:
    """The layer keys of two services with one Dockerfile and the `vm:` options a and b."""
    (tmp_path / "Dockerfile").write_text(DOCKERFILE)
    (tmp_path / "f.txt").write_text("content\n")
    text = TWINS.replace("{A}", "{" + a + "}").replace("{B}", "{" + b + "}")
    project = build_project(load_text(text, directory=tmp_path), HostFiles()).project
    files = compile_project(project).files
    found = []
    for service in ("a", "b"):
        spec = json.loads(files[PurePosixPath(layout.build_spec("p", service))].data)
        found.append(keys(spec, cache, tmp_path))
    return found[0], found[1]


def test_layer_keys_cover_the_builder_vm(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Two services with one Dockerfile share layers only when their builders are the same:
    a kernel (by content, not path), initrd, command line, machine, cpu, size, firmware
    and the base's format all change what the steps write."""
    cache = cache_with_base(tmp_path)
    for name in ("vmlinuz", "vmlinuz2", "initrd", "ovmf-code", "ovmf-vars"):
        (tmp_path / name).write_bytes(name.encode())
    monkeypatch.setenv("HOLOS_OVMF_CODE", str(tmp_path / "ovmf-code"))
    monkeypatch.setenv("HOLOS_OVMF_VARS", str(tmp_path / "ovmf-vars"))
    same = "kernel: ./vmlinuz, initrd: ./initrd, cmdline: console=ttyS0"
    a, b = twin_keys(tmp_path, cache, same, same)
    assert a == b  # the same builder: shared layers
    for other in (
        "kernel: ./vmlinuz2, initrd: ./initrd, cmdline: console=ttyS0",
        "kernel: ./vmlinuz, cmdline: console=ttyS0",
        "kernel: ./vmlinuz, initrd: ./initrd, cmdline: console=ttyS1",
        same + ", machine: pc",
        same + ", cpu_model: qemu64",
        same + ", vcpu: 2",
        same + ", memory_mb: 2048",
        same + ", disk_size: 20G",
        same + ", uefi: true",
    ):
        a, b = twin_keys(tmp_path, cache, same, other)
        assert not set(a) & set(b), other
    # The same path with other contents: a kernel upgraded in place.
    before, _ = twin_keys(tmp_path, cache, same, same)
    (tmp_path / "vmlinuz").write_bytes(b"a newer kernel")
    after, _ = twin_keys(tmp_path, cache, same, same)
    assert not set(before) & set(after)
    # UEFI: the firmware's contents.
    uefi = same + ", uefi: true"
    before, _ = twin_keys(tmp_path, cache, uefi, uefi)
    (tmp_path / "ovmf-vars").write_bytes(b"other variables")
    after, _ = twin_keys(tmp_path, cache, uefi, uefi)
    assert not set(before) & set(after)


def test_a_base_of_another_format_has_other_keys(tmp_path: Path) -> None:
    (tmp_path / "base.img").write_bytes(bytes(1 << 20))  # raw bytes; read as either format
    qemu_img = require_tool("qemu-img")
    subprocess.run([qemu_img, "convert", "-f", "raw", "-O", "qcow2", tmp_path / "base.img",
                    tmp_path / "q.img"], check=True)  # fmt: skip
    os.replace(tmp_path / "q.img", tmp_path / "base.img")
    spec = compiled_spec(tmp_path)
    cache = Cache(tmp_path / "images").create()
    spec["base"] = {"file": "base.img", "format": "qcow2"}
    qcow = keys(spec, cache, tmp_path)
    spec["base"] = {"file": "base.img", "format": "raw"}
    assert not set(keys(spec, cache, tmp_path)) & set(qcow)


def test_a_missing_kernel_is_one_clear_line(tmp_path: Path) -> None:
    spec = compiled_spec(tmp_path)
    spec["vm"]["kernel"] = "./gone"
    with pytest.raises(bake.Failure, match=f"kernel {tmp_path}/gone: No such file"):
        bake.plan(spec, cache_with_base(tmp_path), tmp_path)


def fill(cache: Cache, plan: bake.Plan, upto: int) -> None:
    """Commit real qcow2 layers for the plan's first `upto` keys, as a build would."""
    qemu_img = require_tool("qemu-img")
    store = layers.Layers(cache)
    work = store.work_dir()
    for index, step in enumerate(plan.steps[:upto]):
        built = work / f"{step.key}.qcow2"
        below = plan.base if index == 0 else str(store.path(plan.steps[index - 1].key))
        fmt = plan.base_format if index == 0 else "qcow2"
        argv = [qemu_img, "create", "-q", "-f", "qcow2", "-F", fmt, "-b", below, str(built)]
        subprocess.run(argv, check=True)
        backing = (
            os.path.relpath(plan.base, store.root)
            if index == 0
            else f"{plan.steps[index - 1].key}.qcow2"
        )
        bake.rebase(built, backing, fmt)
        record = layers.LayerRecord(step.key, "parent", step.made_by, "p", "web", "now")
        store.commit(built, record)
    work.rmdir()


def test_a_cached_build_starts_no_vm(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cache = cache_with_base(tmp_path)
    spec = compiled_spec(tmp_path)
    plan = bake.plan(spec, cache, tmp_path)
    fill(cache, plan, len(plan.steps))
    # No QEMU, qemu-img or ssh can be found: a build that needed one would fail.
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    lines: list[str] = []
    assert bake.bake(spec, cache, tmp_path, lines.append) == plan.final
    assert lines[-1] == f"p/web: image cached ({plan.final[:12]}), no builder started"
    assert [line.endswith(": cached") for line in lines[:-1]] == [True] * 3
    # Counted with the seal (4 steps), which a cached build does not list.
    assert [line.split(": ")[1] for line in lines[:-1]] == ["step 1/4", "step 2/4", "step 3/4"]
    store = layers.Layers(cache)
    assert store.tagged("p", "web") == plan.final
    # The layers form one chain, each naming its parent by a relative path.
    assert store.lineage(plan.final) == [s.key for s in reversed(plan.steps)]
    assert store.base_digest(plan.final) == "sha512:" + "ab" * 64
    assert layers.backing_file(store.path(plan.steps[1].key)) == f"{plan.steps[0].key}.qcow2"


def test_layers_and_build_tags_are_private_whatever_the_umask(tmp_path: Path) -> None:
    """`holosc bake` and `up` build in the CLI's process, under its umask."""
    umask = os.umask(0o022)
    try:
        cache = cache_with_base(tmp_path)
        spec = compiled_spec(tmp_path)
        plan = bake.plan(spec, cache, tmp_path)
        fill(cache, plan, len(plan.steps))
        bake.bake(spec, cache, tmp_path, lambda line: None)
    finally:
        os.umask(umask)
    assert (cache.root / "builds" / "p" / "web").is_symlink()
    assert not_private(cache.root) == {}


def test_a_partly_cached_build_boots_from_the_deepest_layer(tmp_path: Path) -> None:
    cache = cache_with_base(tmp_path)
    spec = compiled_spec(tmp_path)
    plan = bake.plan(spec, cache, tmp_path)
    fill(cache, plan, 2)
    assert bake.cached_depth(plan, layers.Layers(cache)) == 2
    edited = bake.plan(compiled_spec(tmp_path, DOCKERFILE.replace("one", "uno")), cache, tmp_path)
    assert bake.cached_depth(edited, layers.Layers(cache)) == 1


def test_commit_never_replaces_a_layer(tmp_path: Path) -> None:
    cache = cache_with_base(tmp_path)
    plan = bake.plan(compiled_spec(tmp_path), cache, tmp_path)
    fill(cache, plan, 1)
    store = layers.Layers(cache)
    path = store.path(plan.steps[0].key)
    before = (path.stat().st_ino, path.read_bytes())
    other = store.work_dir() / "other.qcow2"
    other.write_bytes(b"not the same layer")
    store.commit(other, layers.LayerRecord(plan.steps[0].key, "x", "RUN x", "p", "web", "now"))
    assert (path.stat().st_ino, path.read_bytes()) == before
    assert not other.exists()


def test_an_abandoned_build_is_cleaned_a_live_one_is_not(tmp_path: Path) -> None:
    store = layers.Layers(cache_with_base(tmp_path))
    dead, live = store.work_dir(), store.work_dir()
    (dead / "x.qcow2").write_bytes(b"half")
    (live / "y.qcow2").write_bytes(b"busy")
    with layers.build_lock(live):
        store.remove_abandoned_work()
    assert not dead.exists() and (live / "y.qcow2").exists()


def test_cleanup_never_goes_through_what_it_did_not_create(tmp_path: Path) -> None:
    """A `.work-*` symlink to another directory, and a `.work-*` directory of another
    user's, are left alone: their targets keep every file."""
    store = layers.Layers(cache_with_base(tmp_path))
    dead = store.work_dir()
    victim = tmp_path / "victim"
    victim.mkdir()
    (victim / "precious").write_text("keep me\n")
    os.symlink(victim, store.root / ".work-planted")
    theirs = store.root / ".work-theirs"
    theirs.mkdir()
    (theirs / "x.qcow2").write_text("theirs\n")
    os.chown(theirs, 65534, 65534)  # nobody's
    os.symlink(victim / "precious", dead / "link.qcow2")  # a symlink inside: only it goes

    store.remove_abandoned_work()

    assert (victim / "precious").read_text() == "keep me\n"
    assert (store.root / ".work-planted").is_symlink()
    assert (theirs / "x.qcow2").exists()
    assert not dead.exists()


def test_a_missing_base_is_one_clear_line(tmp_path: Path) -> None:
    cache = Cache(tmp_path / "images").create()
    with pytest.raises(bake.Failure, match=r"base image debian:12 is not in the cache .*"):
        bake.plan(compiled_spec(tmp_path), cache, tmp_path)
    assert bake.main(["--spec", str(tmp_path / "nope.json"), "--images", str(cache.root)]) == 1
