"""The image cache and image units: prune time, local-image change detection, and a bare
`systemctl start holos-<p>.target` on an empty vs a warm cache (prints, asserts nothing).

    .venv/bin/python bench/images.py [--size-mib 200] [--local-gib 8] [--skip-systemd]

* prune: `holosc images prune --all` over N cached digests (half of them used by an
  overlay, so kept), as a subprocess: what a person waits for.
* built images: `holosc images`, `images --layers`, `images prune` (all used) and
  `prune --all` (half the builds unused) over 20 builds of 10 layers each (200 layers,
  each build's instances on half of them).
* what the image checks cost (issue 22): reading the qcow2 headers of an instance disk's
  whole chain (disk, 10 build layers, the registry blob), which holos-image does at
  every start, and hashing a builder's kernel and initrd (18 MiB, the test guest's),
  which every build plan does for its layer keys.
* change detection of a local image (`holos-image overlay --file`, run at every start):
  the stat it does, against reading samples or the whole file, on a sparse file of
  --local-gib GiB; and the whole helper process as launch.sh runs it.
* bare start (root; a private systemd as in tests/systemd_harness.py, the Debian cloud
  kernel tests/guestkernel.py caches, no initramfs): seconds from `systemctl start` of
  the target to the instance's QEMU running, first with an empty cache (the image unit
  downloads and verifies a --size-mib MiB image from an http.server in the namespace),
  then warm (image cached, instance disk removed), then with the disk kept.
pull and verify throughput: bench/pull.py.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from holos_runtime import bake, qcow2  # noqa: E402
from holos_runtime.imagecache import Cache  # noqa: E402
from holos_runtime.layers import LayerRecord, Layers, chain  # noqa: E402

if TYPE_CHECKING:
    from tests.systemd_harness import PrivateSystemd

HELPER = str(Path(sys.executable).parent / "holos-image")
GIB = 1 << 30


def timed(fn: Callable[[], object], repeat: int = 1) -> float:
    start = time.perf_counter()
    for _ in range(repeat):
        fn()
    return (time.perf_counter() - start) / repeat


def qemu_img(*args: str) -> None:
    subprocess.run(["qemu-img", *args], check=True, capture_output=True)


# -- prune -------------------------------------------------------------------------------


def bench_prune(root: Path, count: int = 40) -> None:
    state = root / "prune"
    cache = Cache(state / "images").create()
    seed = state / "seed.qcow2"
    state.mkdir(exist_ok=True)
    qemu_img("create", "-f", "qcow2", str(seed), "64M")
    for i in range(count):
        image = state / f"img{i}.qcow2"
        shutil.copy(seed, image)
        with image.open("ab") as stream:
            stream.write(i.to_bytes(4, "big"))  # a distinct digest each
        record = cache.adopt(image, f"bench:t{i}", "sha256", "qcow2")
        if i % 2:
            disk = state / "instances" / "p" / f"i{i}" / "root.qcow2"
            disk.parent.mkdir(parents=True)
            backing = os.path.relpath(cache.blob(record.digest), disk.parent)
            qemu_img("create", "-f", "qcow2", "-F", "qcow2", "-b", backing, str(disk))
    env = dict(os.environ, HOLOSC_STATE_DIR=str(state), PYTHONPATH=str(REPO))
    argv = [sys.executable, "-m", "holosc", "images", "prune", "--all"]
    start = time.perf_counter()
    out = subprocess.run(argv, env=env, capture_output=True, text=True, check=True).stdout
    took = time.perf_counter() - start
    removed = out.count("removed ")
    again = timed(lambda: subprocess.run(argv, env=env, capture_output=True, check=True))
    startup = timed(
        lambda: subprocess.run([*argv[:-2], "--help"], env=env, capture_output=True, check=True)
    )
    print(
        f"prune --all: {count} digests ({removed} removed, {count - removed} kept as used) "
        f"{took:.2f} s; nothing to remove {again:.2f} s; holosc start-up alone {startup:.2f} s"
    )


def bench_layers(root: Path, builds: int = 20, depth: int = 10) -> None:
    state = root / "layers"
    cache = Cache(state / "images").create()
    seed = state / "seed.qcow2"
    qemu_img("create", "-f", "qcow2", str(seed), "64M")
    base = cache.adopt(seed, "bench:base", "sha256", "qcow2")
    layers = Layers(cache)
    for b in range(builds):
        parent, below = base.digest, os.path.relpath(cache.blob(base.digest), layers.root)
        for step in range(depth):
            key = chain(parent, f"{b}/{step}")
            built = layers.work_dir() / f"{key}.qcow2"
            qemu_img("create", "-q", "-u", "-f", "qcow2", "-F", "qcow2", "-b", below, str(built),
                     "64M")  # fmt: skip
            layers.commit(built, LayerRecord(key, parent, f"RUN step {step}", "p", f"s{b}", ""))
            built.parent.rmdir()
            parent, below = key, f"{key}.qcow2"
        layers.set_tag("p", f"s{b}", parent)
        if b % 2:
            for i in range(2):
                disk = state / "instances" / "p" / f"s{b}-{i}" / "root.qcow2"
                disk.parent.mkdir(parents=True)
                backing = os.path.relpath(layers.path(parent), disk.parent)
                qemu_img("create", "-q", "-u", "-f", "qcow2", "-F", "qcow2", "-b", backing,
                         str(disk), "64M")  # fmt: skip
    env = dict(os.environ, HOLOSC_STATE_DIR=str(state), PYTHONPATH=str(REPO))

    def holosc(*args: str) -> float:
        argv = [sys.executable, "-m", "holosc", *args]
        return timed(lambda: subprocess.run(argv, env=env, capture_output=True, check=True))

    count = builds * depth
    print(
        f"built images, {count} layers ({builds} builds, {builds} instances): "
        f"images {holosc('images'):.2f} s, --layers {holosc('images', '--layers'):.2f} s, "
        f"prune (all used) {holosc('images', 'prune'):.2f} s, prune --all "
        f"({count // 2} layers removed) {holosc('images', 'prune', '--all'):.2f} s; "
        f"holosc start-up alone {holosc('images', '--help'):.2f} s"
    )
    assert len(layers.keys()) == count // 2


# -- image checks ------------------------------------------------------------------------


def bench_checks(root: Path, depth: int = 10) -> None:
    state = root / "checks"
    cache = Cache(state / "images").create()
    seed = state / "seed.qcow2"
    qemu_img("create", "-q", "-f", "qcow2", str(seed), "64M")
    base = cache.adopt(seed, "bench:base", "sha256", "qcow2")
    layers = Layers(cache)
    parent, below = base.digest, os.path.relpath(cache.blob(base.digest), layers.root)
    for step in range(depth):
        key = chain(parent, str(step))
        built = layers.work_dir() / f"{key}.qcow2"
        qemu_img("create", "-q", "-u", "-f", "qcow2", "-F", "qcow2", "-b", below, str(built),
                 "64M")  # fmt: skip
        layers.commit(built, LayerRecord(key, parent, f"RUN {step}", "p", "s", ""))
        built.parent.rmdir()
        parent, below = key, f"{key}.qcow2"
    disk = state / "instances" / "p" / "s-0" / "root.qcow2"
    disk.parent.mkdir(parents=True)
    backing = os.path.relpath(layers.path(parent), disk.parent)
    qemu_img("create", "-q", "-u", "-f", "qcow2", "-F", "qcow2", "-b", backing, str(disk), "64M")

    def own(path: Path) -> bool:
        return path == disk or layers.owns(path)

    walk = timed(lambda: qcow2.check_chain(disk, "qcow2", own, "disk"), repeat=200)
    blob = timed(lambda: qcow2.require_self_contained(seed, "qcow2", "blob"), repeat=2000)
    boot = state / "vmlinuz"
    boot.write_bytes(os.urandom(18 << 20))
    hashed = timed(lambda: bake.file_digest(str(boot), "kernel"), repeat=5)
    print(
        f"image checks: a disk's chain ({depth + 2} headers) {walk * 1e6:.0f} us, one "
        f"image's header {blob * 1e6:.0f} us; a builder's boot files (18 MiB) hashed for "
        f"the layer keys {hashed * 1e3:.0f} ms"
    )


# -- local image change detection -------------------------------------------------------


def bench_change_detection(root: Path, gib: int) -> None:
    image = root / "local.raw"
    with image.open("wb") as stream:
        stream.truncate(gib * GIB)
    disk = root / "instances" / "p" / "local" / "root.qcow2"
    disk.parent.mkdir(parents=True)
    argv = [HELPER, "overlay", "--disk", str(disk), "--format", "raw", "--file", str(image)]
    subprocess.run(argv, check=True)
    stat = timed(lambda: os.stat(image), repeat=10000)
    sampled = timed(lambda: sample_hash(image, 16, 64 << 10), repeat=20)
    helper = timed(lambda: subprocess.run(argv, check=True), repeat=10)
    whole_gib = min(gib, 1)
    with image.open("rb") as stream:
        start = time.perf_counter()
        digest = hashlib.sha256()
        for _ in range(whole_gib * 1024):
            digest.update(stream.read(1 << 20))
        whole = (time.perf_counter() - start) * gib / whole_gib
    print(
        f"local image change check on a {gib} GiB sparse file: stat {stat * 1e6:.1f} us; "
        f"16 x 64 KiB sampled sha256 {sampled * 1e3:.2f} ms; whole sha256 ~{whole:.1f} s "
        f"(measured on {whole_gib} GiB); holos-image overlay process {helper * 1e3:.0f} ms"
    )


def sample_hash(path: Path, samples: int, size: int) -> str:
    digest = hashlib.sha256()
    total = path.stat().st_size
    with path.open("rb") as stream:
        for i in range(samples):
            stream.seek(total * i // samples)
            digest.update(stream.read(size))
    return digest.hexdigest()


# -- bare systemctl start ----------------------------------------------------------------

IMAGE_UNIT = "holos-bench-image-ubuntu-noble.service"
PROJECT = """\
name: bench
services:
  vm:
    image: ubuntu:noble
    stop_grace_period: 1s
    vm: {memory_mb: 128, kernel: ./vmlinuz, cmdline: console=ttyS0 quiet panic=-1}
"""


def bench_bare_start(root: Path, size_mib: int) -> None:
    import tests.conftest  # noqa: F401  (imports tests.guestkernel without a cycle)
    from tests.guestkernel import cache_dir
    from tests.systemd_harness import PrivateSystemd
    from tests.test_images import MIRROR, UBUNTU, serve

    kernel = cache_dir() / "kernel" / "vmlinuz"
    if not kernel.exists():
        print(f"bare start: skipped ({kernel} missing: run tests/test_lifecycle.py once)")
        return
    project = root / "project"
    project.mkdir(parents=True)
    (project / "holos.yaml").write_text(PROJECT)
    shutil.copy(kernel, project / "vmlinuz")
    www = root / "www"
    image = www / UBUNTU.url.split("://", 1)[1].split("/", 1)[1]
    image.parent.mkdir(parents=True)
    qemu_img("create", "-f", "qcow2", str(image), f"{size_mib * 2}M")
    subprocess.run(
        ["qemu-io", "-c", f"write -P 0x11 0 {size_mib}M", str(image)],
        check=True,
        capture_output=True,
    )
    digest = hashlib.sha256(image.read_bytes()).hexdigest()
    sums = www / UBUNTU.checksum_url.split("://", 1)[1].split("/", 1)[1]
    sums.write_text(f"{digest} *{image.name}\n")
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(root / "key")])
    sd = PrivateSystemd(root / "systemd").start()
    try:
        sd.systemctl("set-environment", f"HOLOSC_IMAGE_MIRROR={MIRROR}")
        serve(sd, www)
        sd.holosc("install", cwd=project, check=True, HOLOSC_SSH_KEY=str(root / "key"))
        unit = "holos-bench-vm@0.service"
        disk = sd.state / "var-lib-holos" / "instances" / "bench" / "vm-0" / "root.qcow2"
        size = image.stat().st_size / 2**20
        for label in (
            f"empty cache ({size:.0f} MiB image)",
            "warm cache, new disk",
            "warm, disk kept",
        ):
            start = time.perf_counter()
            sd.systemctl("start", "holos-bench.target")
            while (state := show(sd, unit)) != "active":
                if state == "failed" or time.perf_counter() - start > 600:
                    raise SystemExit(f"{unit} {state}")
                time.sleep(0.02)
            took = time.perf_counter() - start
            image_s = (
                int(prop(sd, IMAGE_UNIT, "ActiveEnterTimestampMonotonic"))
                - int(prop(sd, IMAGE_UNIT, "InactiveExitTimestampMonotonic"))
            ) / 1e6
            print(
                f"bare systemctl start, {label}: {took:.2f} s to running "
                f"(image unit {image_s:.2f} s)"
            )
            sd.systemctl("stop", IMAGE_UNIT)  # a warm start runs it again, as after a reboot
            sd.systemctl("stop", unit, "holos-bench.target")
            if label.startswith("empty"):
                disk.unlink()
    finally:
        sd.stop()


def show(sd: PrivateSystemd, unit: str) -> str:
    return prop(sd, unit, "ActiveState")


def prop(sd: PrivateSystemd, unit: str, name: str) -> str:
    return sd.systemctl("show", "-p", name, "--value", unit).stdout.strip()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--size-mib", type=int, default=200)
    parser.add_argument("--local-gib", type=int, default=8)
    parser.add_argument("--skip-systemd", action="store_true")
    args = parser.parse_args()
    print(f"{os.cpu_count()} CPUs, load {os.getloadavg()[0]:.1f}")
    with tempfile.TemporaryDirectory() as tmp:
        bench_prune(Path(tmp))
        bench_layers(Path(tmp))
        bench_checks(Path(tmp))
        bench_change_detection(Path(tmp), args.local_gib)
        if not args.skip_systemd:
            bench_bare_start(Path(tmp) / "start", args.size_mib)


if __name__ == "__main__":
    main()
