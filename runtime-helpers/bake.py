"""holos-bake: build a service's image from its compiled Dockerfile build, layer by layer.

Usage::

    holos-bake --spec SPEC.json [--images DIR] [--project-dir DIR] [--no-cache]
               [--boot-timeout S]

SPEC is what holosc compiled from the Dockerfile (`<p>/<service>.build.json`): the base
image, the builder VM's size, and one step per RUN or COPY, each a POSIX sh script run as
root in the builder (COPY's file content is the script's standard input). The images
directory defaults to the unit's $STATE_DIRECTORY; relative paths in SPEC (a local base
image, a kernel) are below --project-dir, by default the `project` link beside SPEC that
`holosc install` makes.

Each step's result is a layer keyed by the chain of what made it (holos_runtime.layers):
layers already in the cache are used as they are, and the builder VM boots from the
deepest one found. It boots once for all missing steps: after each step the guest syncs
and QEMU switches the disk to a new overlay (QMP blockdev-snapshot-sync), so the layer
below is closed without a reboot. A last step, the seal, removes what belongs to the
builder (its SSH key, host keys, cloud-init's instance state, machine-id, the random
seed) and writes the Dockerfile's ENV into /etc/environment; the guest then shuts down by
ACPI and the sealed layer becomes the service's image (`builds/<p>/<service>`), which
instances' overlays are created on. Output of each step goes to stdout (the journal).

A layer's key covers everything that can change its bytes: the base image (its digest,
or a local file's identity) and format, the disk size, the builder VM (machine, cpu,
vcpu, memory, the kernel's and initrd's contents, the command line, the firmware's
contents) and the builder's version, then each step. The base must be self-contained
and a cached layer's chain must be the cache's own (holos_runtime.qcow2): nothing
boots on an image that names a host file.

A failing step fails the build with its exit code; the layers of the steps before it
are kept (as Docker keeps them), nothing of the failed step is. Exit codes: 0 built or
cached, 1 failure (one line on stderr), 2 usage, else the failing step's exit code.
Standard library and (lazily) qemu.qmp; never imports the compiler.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import dataclasses
import hashlib
import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, NoReturn

from holos_runtime import consolelog, qcow2
from holos_runtime import layers as L
from holos_runtime.health import pinned_host_key, remote_command
from holos_runtime.image import Failure as ImageFailure
from holos_runtime.image import identity, images_dir
from holos_runtime.imagecache import Cache, now, open_lock
from holos_runtime.optstrings import qemu_cpu, qemu_name, qemu_value
from holos_runtime.seed import build_iso
from holos_runtime.terminal import terminal_safe

PROG = "holos-bake"
SPEC_FORMAT = 1
ALIAS = "holos-builder"
Say = Callable[[str], None]
# (what, state, detail): what is waited for, e.g. "p/web", "builder VM booting" and the
# console's last line; an empty state ends the wait.
Status = Callable[[str, str, str], None]


class Failure(Exception):
    """The build failed; `code` is the exit code (a step's own, or 1)."""

    def __init__(self, message: str, code: int = 1) -> None:
        super().__init__(message)
        self.code = code


class StepFailure(Failure):
    """A step of the Dockerfile failed in the guest (the build ran; its input is wrong)."""


@dataclasses.dataclass(frozen=True, slots=True)
class Step:
    key: str
    made_by: str  # for messages and the layer's record: "RUN apt-get update"
    line: int  # in the Dockerfile; 0 for the seal
    script: str
    input: bytes = b""


@dataclasses.dataclass(frozen=True, slots=True)
class Plan:
    project: str
    service: str
    base: str  # the base image's path on this host
    base_format: str
    base_key: str  # key(0)
    steps: tuple[Step, ...]  # the Dockerfile's steps, then the seal
    vm: dict[str, Any]  # the builder's size, machine and boot files (paths on this host)
    disk_size: int | None = None

    @property
    def final(self) -> str:
        return self.steps[-1].key


# -- the plan: keys of every layer ---------------------------------------------------------


def load_spec(path: Path) -> dict[str, Any]:
    try:
        spec = json.loads(path.read_text("utf-8"))
    except (OSError, ValueError) as exc:
        raise Failure(f"cannot read the build {path}: {exc}") from exc
    if not isinstance(spec, dict) or spec.get("format") != SPEC_FORMAT:
        raise Failure(f"{path} is not a build of this holos-bake (format {SPEC_FORMAT})")
    return spec


def plan(spec: dict[str, Any], cache: Cache, project_dir: Path, *, no_cache: bool = False) -> Plan:
    """Resolve the base and the builder's boot files on this host and key every layer.
    `no_cache` salts the keys: every layer is made afresh, and none replaces a cached one
    (layers are never rewritten).

    :raises Failure: when the base is missing or not self-contained, or a boot file is
        missing.
    """
    base = spec["base"]
    if "ref" in base:
        record = cache.resolve(base["ref"])
        if record is None:
            raise Failure(
                f"base image {base['ref']} is not in the cache {cache.root}: its image unit "
                f"fetches it, or run holosc pull {base['ref']}"
            )
        path, base_id, what = cache.blob(record.digest), record.digest, base["ref"]
    else:
        path = Path(base["file"]) if base["file"].startswith("/") else project_dir / base["file"]
        try:
            stamp = identity(path.resolve(strict=True))
        except OSError as exc:
            raise Failure(f"base image {path}: {exc.strerror or exc}") from exc
        base_id, what = f"file:{path.resolve()}:{json.dumps(stamp, sort_keys=True)}", str(path)
    try:
        qcow2.require_self_contained(path, base["format"], f"base image {what}")
    except qcow2.UnsafeImage as exc:
        raise Failure(f"{exc}: a build's base must be self-contained") from None
    vm = builder_vm(spec["vm"], project_dir)
    salt = secrets.token_hex(16) if no_cache else ""
    made_by = {
        "base": base_id,
        "base_format": base["format"],
        "disk_size": spec.get("disk_size"),
        "builder": builder_identity(vm),
    }
    key = L.chain(L.BUILDER_VERSION, made_by | ({"no_cache": salt} if salt else {}))
    base_key, steps = key, []
    for raw in spec["steps"]:
        script = lines(raw["script"])
        key = L.chain(key, {"script": script, "input": raw.get("input") or ""})
        blob = base64.b64decode(raw["input"]) if raw.get("input") else b""
        steps.append(Step(key, raw["instruction"], raw["line"], script, blob))
    seal = seal_script(spec["seal"])
    steps.append(Step(L.chain(key, {"seal": seal}), "seal", 0, seal))
    return Plan(
        spec["project"],
        spec["service"],
        str(path),
        base["format"],
        base_key,
        tuple(steps),
        vm,
        spec.get("disk_size"),
    )


def builder_vm(spec_vm: dict[str, Any], project_dir: Path) -> dict[str, Any]:
    """The builder's VM as it boots on this host: boot files as host paths, the cpu model
    QEMU gets, and the firmware found (code and the template of its variables)."""
    vm = dict(spec_vm)
    for name in ("kernel", "initrd"):
        if vm.get(name) and not vm[name].startswith("/"):
            vm[name] = str(project_dir / vm[name])
    vm["cpu"] = cpu_model(vm.get("cpu", "host"))
    if vm.get("ovmf_pairs"):
        vm["firmware"] = list(find_firmware(vm["ovmf_pairs"]))
    return vm


def builder_identity(vm: dict[str, Any]) -> dict[str, Any]:
    """What of the builder VM can change a layer's bytes: two services with one
    Dockerfile share layers only when they boot the same builder."""
    names = ("machine", "cpu", "vcpu", "memory_mb", "cmdline")
    found = {name: vm.get(name) for name in names}
    for name in ("kernel", "initrd"):
        found[name] = file_digest(vm[name], name) if vm.get(name) else None
    firmware = vm.get("firmware")
    found["firmware"] = [file_digest(f, "firmware") for f in firmware] if firmware else None
    return found


def file_digest(path: str, what: str) -> str:
    """sha256 of a boot file's contents (a path names no content: it can be replaced)."""
    try:
        with open(path, "rb") as stream:
            return "sha256:" + hashlib.file_digest(stream, "sha256").hexdigest()
    except OSError as exc:
        raise Failure(f"{what} {path}: {exc.strerror or exc}") from exc


def lines(text: list[str]) -> str:
    """A script as the spec keeps it (a list of lines, for reviewable diffs)."""
    return "".join(f"{line}\n" for line in text)


def seal_script(seal: dict[str, Any]) -> str:
    """What makes a builder's disk an image every replica can boot as a new machine."""
    environment = "".join(
        f"""v=$(printenv -- {name} || true)
sed -i '/^{name}=/d' /etc/environment
case $v in *'"'*|*'\\'*|*'
'*) echo "holos: ENV {name} is not written to /etc/environment: its value has a quote, \
backslash or line break" >&2 ;;
*) printf '%s="%s"\\n' {name} "$v" >>/etc/environment ;; esac
"""
        for name in seal["environment"]
    )
    return (
        "set -e\n"
        + lines(seal["exports"])
        + "touch /etc/environment\n"
        + environment
        + """sed -i '/ holos-builder-[0-9a-f]*$/d' /root/.ssh/authorized_keys 2>/dev/null || true
rm -f /etc/ssh/ssh_host_*_key /etc/ssh/ssh_host_*_key.pub
if command -v cloud-init >/dev/null 2>&1; then cloud-init clean --logs >/dev/null; fi
rm -rf /var/lib/cloud/instances /var/lib/cloud/instance /var/lib/cloud/data
rm -f /etc/systemd/network/10-cloud-init-*.network /etc/netplan/50-cloud-init.yaml \\
  /etc/network/interfaces.d/50-cloud-init /etc/network/interfaces.d/50-cloud-init.cfg
rm -f /var/lib/systemd/random-seed /var/lib/systemd/credential.secret
rm -f /var/lib/dhcp/*.leases
rm -rf /var/log/journal/*
: >/etc/machine-id
sync
"""
    )


def cached_depth(plan_: Plan, layers: L.Layers) -> int:
    """How many of the plan's layers (from the bottom) are in the cache."""
    depth = 0
    for step in plan_.steps:
        if layers.record(step.key) is None:
            break
        depth += 1
    return depth


# -- the build -----------------------------------------------------------------------------


def bake(
    spec: dict[str, Any],
    cache: Cache,
    project_dir: Path,
    say: Say,
    *,
    no_cache: bool = False,
    boot_timeout: float = 900.0,
    status: Status | None = None,
) -> str:
    """Build what the cache lacks, tag the result; returns the image's layer key.
    `status` hears every second or so what the build waits for while nothing else is said
    (the builder's boot): a terminal shows it as one updating line."""
    cache.create()
    layers = L.Layers(cache)
    name = f"{spec['project']}/{spec['service']}"
    # One build at a time per cache: two services with the same Dockerfile name the same
    # layers, and a layer must be built once (the second build then finds it).
    lock = cache.root / "locks" / "build"
    os.close(open_lock(lock))
    with L.build_lock(lock), cache.locked(shared=True):  # no prune under a build
        layers.remove_abandoned_work()
        plan_ = plan(spec, cache, project_dir, no_cache=no_cache)
        total = len(plan_.steps)  # the seal is a step too
        depth = cached_depth(plan_, layers)
        if depth:  # what the builder boots from, or the image the tag will name
            try:
                base = (plan_.base, plan_.base_format)
                layers.check(plan_.steps[depth - 1].key, f"cached layers of {name}", base)
            except qcow2.UnsafeImage as exc:
                raise Failure(str(exc)) from None
        for index, step in enumerate(plan_.steps[:depth], 1):
            if step.line:
                say(f"{name}: step {index}/{total}: {step.made_by}: cached")
        if depth < len(plan_.steps):
            Builder(plan_, layers, say, boot_timeout, name, status).run(depth)
        else:
            say(f"{name}: image cached ({plan_.final[:12]}), no builder started")
        layers.set_tag(plan_.project, plan_.service, plan_.final)
    return plan_.final


class Builder:
    """One boot of the builder VM that makes the layers from `depth` on."""

    def __init__(
        self,
        plan_: Plan,
        layers: L.Layers,
        say: Say,
        boot_timeout: float,
        name: str,
        status: Status | None = None,
    ) -> None:
        self.plan = plan_
        self.status: Status = status or (lambda what, state, detail: None)
        self.at = "booting"  # what runs, for the summary of an interrupted build
        self.layers = layers
        self.say = say
        self.boot_timeout = boot_timeout
        self.name = name
        self.work = layers.work_dir()
        self.done: list[Step] = []  # layers closed by a snapshot or the shutdown

    def run(self, depth: int) -> None:
        steps = self.plan.steps
        below = self._path_below(depth)
        with L.build_lock(self.work), tempfile.TemporaryDirectory(prefix="holos-bake-") as tmp:
            vm = VM(Path(tmp), self.plan, self.say)
            first = self.work / f"{steps[depth].key}.qcow2"
            size = self.plan.disk_size if depth == 0 else None
            create_layer(first, below, self.plan.base_format if depth == 0 else "qcow2", size)
            try:
                todo = f"step {depth + 1}" if depth + 1 == len(steps) else "steps "
                todo += "" if depth + 1 == len(steps) else f"{depth + 1}-{len(steps)}"
                self.say(f"{self.name}: starting the builder VM for {todo} of {len(steps)}")
                vm.start(first)
                vm.wait_ready(self.boot_timeout, self.status, self.name)
                for index in range(depth, len(steps)):
                    self._step(vm, index)
                self.at = "shutting down"
                vm.shutdown()
                self.done.append(steps[-1])
            except KeyboardInterrupt:
                self.say(self._interrupted(depth))
                raise
            finally:
                vm.kill()
                self._commit(depth)
                shutil.rmtree(self.work, ignore_errors=True)

    def _path_below(self, depth: int) -> str:
        if depth == 0:
            return self.plan.base
        return str(self.layers.path(self.plan.steps[depth - 1].key))

    def _step(self, vm: VM, index: int) -> None:
        steps, step = self.plan.steps, self.plan.steps[index]
        label = step.made_by if step.line else "sealing the image"
        self.at = f"step {index + 1}/{len(steps)}"
        self.say(f"{self.name}: {self.at}: {label}"[:300])
        started = time.monotonic()
        code = vm.run(step.script, step.input)
        if code != 0:
            where = f" (Dockerfile line {step.line})" if step.line else ""
            message = f"{self.name}: {step.made_by}{where} failed with exit code {code}"
            raise StepFailure(message, code)
        self.say(f"{self.name}: step done in {time.monotonic() - started:.1f} s")
        if index + 1 < len(steps):  # close this layer: later writes go to the next one
            vm.snapshot(self.work / f"{steps[index + 1].key}.qcow2")
            self.done.append(step)

    def _interrupted(self, depth: int) -> str:
        """What Ctrl-C left: the layers kept, where the next build goes on."""
        kept = depth + len(self.done)
        total = len(self.plan.steps)
        where = "while the builder VM was booting" if self.at == "booting" else f"at {self.at}"
        cached = (
            f"steps 1-{kept} of {total} are cached"
            if kept > 1
            else ("step 1 is cached" if kept == 1 else "no step is cached yet")
        )
        return (
            f"{self.name}: interrupted {where}; the builder VM is stopped and {cached}: "
            f"holosc bake (or up) goes on from step {min(kept + 1, total)}"
        )

    def _commit(self, depth: int) -> None:
        """Give the closed layers their final backing names and move them into the cache."""
        for index, step in enumerate(self.done, depth):
            parent = self.plan.steps[index - 1].key if index else None
            built = self.work / f"{step.key}.qcow2"
            if parent is None:  # the first layer, on the base image
                rebase(built, self._base_name(), self.plan.base_format)
            else:
                rebase(built, f"{parent}.qcow2", "qcow2")
            record = L.LayerRecord(
                step.key,
                parent or self.plan.base_key,
                step.made_by[:200],
                self.plan.project,
                self.plan.service,
                now(),
            )
            self.layers.commit(built, record)

    def _base_name(self) -> str:
        base = Path(self.plan.base)
        if base.parent.parent.name == "blobs":  # a registry blob: relative, like overlays
            return os.path.relpath(base, self.layers.root)
        return str(base.resolve())


def create_layer(path: Path, backing: str, backing_format: str, size: int | None = None) -> None:
    argv = ["qemu-img", "create", "-q", "-f", "qcow2", "-F", backing_format, "-b", backing]
    _run([*argv, str(path), *([str(size)] if size else [])], "qemu-img create")


def rebase(path: Path, backing: str, backing_format: str) -> None:
    """Rename the backing file in the header only (-u): the content is the same file."""
    argv = ["qemu-img", "rebase", "-u", "-f", "qcow2", "-F", backing_format, "-b", backing]
    _run([*argv, str(path)], "qemu-img rebase")


def _run(argv: list[str], what: str) -> None:
    try:
        result = subprocess.run(argv, capture_output=True, text=True, stdin=subprocess.DEVNULL)
    except FileNotFoundError as exc:
        raise Failure(f"{argv[0]} not found: install qemu-utils") from exc
    if result.returncode != 0:
        raise Failure(f"{what} failed: {result.stderr.strip()}")


# -- the builder VM ------------------------------------------------------------------------


def accel() -> str:
    """KVM only when it really works (as launch.sh decides); HOLOS_ACCEL overrides."""
    chosen = os.environ.get("HOLOS_ACCEL", "auto")
    if chosen == "auto":
        usable = os.access("/dev/kvm", os.R_OK | os.W_OK) and not os.path.exists(
            "/sys/module/kvm_pvm"
        )
        with contextlib.suppress(OSError):
            flags = Path("/proc/cpuinfo").read_text()
            usable = usable and (" vmx" in flags or " svm" in flags)
        chosen = "kvm" if usable else "tcg"
    if chosen not in ("kvm", "tcg"):
        raise Failure(f"HOLOS_ACCEL must be kvm, tcg or auto, not {chosen!r}")
    return chosen


def cpu_model(cpu: str) -> str:
    """The -cpu QEMU gets: `host` needs KVM, so TCG runs `max`, with the same features
    switched (`host,-vmx` becomes `max,-vmx`)."""
    model, comma, features = cpu.partition(",")
    return f"max{comma}{features}" if model == "host" and accel() != "kvm" else cpu


def find_firmware(pairs: list[list[str]]) -> tuple[str, str]:
    """OVMF as launch.sh finds it (HOLOS_OVMF_CODE/VARS first): its code and the template
    of its variables."""
    given = (os.environ.get("HOLOS_OVMF_CODE", ""), os.environ.get("HOLOS_OVMF_VARS", ""))
    for code, template in [list(given), *pairs]:
        if code and os.access(code, os.R_OK) and os.access(template, os.R_OK):
            return code, template
    raise Failure(
        "OVMF firmware not found: install ovmf, or set HOLOS_OVMF_CODE and HOLOS_OVMF_VARS"
    )


def _q(path: Path | str) -> str:
    """A path inside a QEMU option string."""
    return qemu_value(os.fspath(path))


MAC = "52:54:00:b0:00:01"


def seed_files(
    client_key: str, host_private: str, host_public: str, token: str
) -> dict[str, bytes]:
    """The builder's NoCloud seed: root may log in with the one-time key, and the guest
    presents the one-time host key the builder pins."""
    user_data = {
        "disable_root": False,
        "ssh_pwauth": False,
        "ssh_authorized_keys": [client_key],
        "ssh_keys": {"ed25519_private": host_private, "ed25519_public": host_public},
    }
    network = {
        "version": 2,
        "ethernets": {"builder": {"match": {"macaddress": MAC}, "dhcp4": True}},
    }
    meta = f"instance-id: holos-builder-{token}\nlocal-hostname: holos-builder\n"
    return {
        "user-data": ("#cloud-config\n" + json.dumps(user_data, indent=2) + "\n").encode(),
        "meta-data": meta.encode(),
        "network-config": (json.dumps(network) + "\n").encode(),
    }


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class VM:
    """The builder: the base (or a cached layer) plus a new overlay, a NoCloud seed with
    a one-time SSH key and host key, user networking with sshd on a loopback port."""

    def __init__(self, tmp: Path, plan_: Plan, say: Say) -> None:
        self.tmp = tmp
        self.plan = plan_
        self.say = say
        self.process: subprocess.Popen[bytes] | None = None
        self.port = free_port()
        self.key = tmp / "id_ed25519"
        self.known_hosts = tmp / "known_hosts"
        self.console = tmp / "console.log"
        self.log = tmp / "qemu.log"  # QEMU's own messages (a bad -cpu, a missing file)
        self.qmp_path = tmp / "qmp.sock"
        self.qmp: Any = None

    def _seed(self) -> Path:
        token = secrets.token_hex(8)
        for path, comment in ((self.key, f"holos-builder-{token}"), (self.tmp / "host", ALIAS)):
            _run(
                ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", str(path)],
                "ssh-keygen",
            )
        host_public = " ".join((self.tmp / "host.pub").read_text().split()[:2])
        self.known_hosts.write_text(f"{ALIAS} {host_public}\n")
        client = (self.tmp / "id_ed25519.pub").read_text().strip()
        files = seed_files(client, (self.tmp / "host").read_text(), host_public, token)
        seed = self.tmp / "seed.iso"
        seed.write_bytes(build_iso(files))
        return seed

    def argv(self, disk: Path, seed: Path) -> list[str]:
        vm = self.plan.vm
        mode = accel()
        try:  # holosc validated both; the spec is a file in the output directory
            machine = qemu_name(vm.get("machine", "q35"))
            cpu = qemu_cpu(cpu_model(vm.get("cpu", "host")))
        except ValueError as exc:
            raise Failure(f"the build's vm: {exc}") from exc
        argv = [
            "qemu-system-x86_64",
            "-name", f"holos-bake-{self.plan.service}",
            "-machine", f"{machine},accel={mode}",
            "-cpu", cpu,
            "-smp", str(vm.get("vcpu", 1)),
            "-m", f"{vm.get('memory_mb', 1024)}M",
            "-nodefaults", "-no-user-config", "-display", "none",
            "-chardev", f"file,id=console0,path={_q(self.console)}",
            "-serial", "chardev:console0",
            "-chardev", f"socket,id=qmp,path={_q(self.qmp_path)},server=on,wait=off",
            "-mon", "chardev=qmp,mode=control",
            "-device", "virtio-rng-pci",
            "-drive", f"id=root,if=none,format=qcow2,cache=writeback,discard=unmap,file={_q(disk)}",
            "-device", "virtio-blk-pci,drive=root",
            "-drive", f"id=seed,if=none,format=raw,readonly=on,file={_q(seed)}",
            "-device", "virtio-blk-pci,drive=seed",
            "-netdev", f"user,id=net0,hostfwd=tcp:127.0.0.1:{self.port}-:22",
            "-device", f"virtio-net-pci,netdev=net0,mac={MAC}",
        ]  # fmt: skip
        if vm.get("ovmf_pairs"):
            code, variables = self._firmware(vm.get("firmware") or find_firmware(vm["ovmf_pairs"]))
            argv += [
                "-drive", f"if=pflash,format=raw,readonly=on,file={_q(code)}",
                "-drive", f"if=pflash,format=raw,file={_q(variables)}",
            ]  # fmt: skip
        if vm.get("kernel"):
            argv += ["-kernel", vm["kernel"]]
        if vm.get("initrd"):
            argv += ["-initrd", vm["initrd"]]
        if vm.get("cmdline"):
            argv += ["-append", vm["cmdline"]]
        return argv

    def _firmware(self, found: Sequence[str]) -> tuple[str, Path]:
        """The firmware's code, and the builder's EFI variables: a copy of the template,
        thrown away with the builder."""
        code, template = found
        variables = self.tmp / "OVMF_VARS.fd"
        shutil.copyfile(template, variables)
        return code, variables

    def start(self, disk: Path) -> None:
        """Start QEMU and connect to its QMP socket.

        :raises Failure: with QEMU's own message when it exits at start (a bad -cpu or
            machine, a missing kernel): it opens its QMP socket before it checks those.
        """
        seed = self._seed()
        self.console.touch(mode=0o600)
        with open(self.log, "wb") as log:
            try:
                self.process = subprocess.Popen(
                    self.argv(disk, seed), stdin=subprocess.DEVNULL, stdout=log, stderr=log
                )
            except FileNotFoundError as exc:
                raise Failure("qemu-system-x86_64 not found: install qemu-system-x86") from exc
        from qemu.qmp import QMPError  # only when a VM runs
        from qemu.qmp.legacy import QEMUMonitorProtocol

        deadline = time.monotonic() + 30
        while True:
            self._check_alive()
            qmp = QEMUMonitorProtocol(str(self.qmp_path))
            try:
                qmp.connect(negotiate=True)
                self.qmp = qmp
                return
            except (QMPError, OSError, EOFError) as exc:
                # QEMU creates its socket a moment before it listens on it: until then the
                # file is missing or a connection is refused, and that is retried.
                cause = getattr(exc, "exc", exc)
                not_yet = isinstance(cause, (FileNotFoundError, ConnectionRefusedError))
                if not not_yet or time.monotonic() > deadline:
                    self._cannot_connect(exc)
            time.sleep(0.05)

    def _cannot_connect(self, exc: BaseException) -> NoReturn:
        assert self.process is not None
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(5)  # it is exiting: its message says why
        self._check_alive()
        raise Failure(f"cannot talk to the builder's QEMU over QMP: {exc}") from None

    def _check_alive(self) -> None:
        if self.process is not None and self.process.poll() is not None:
            said = ""
            with contextlib.suppress(OSError):
                said = self.log.read_bytes()[-2000:].decode(errors="replace").strip()
            said = terminal_safe(said)
            raise Failure(
                f"the builder's QEMU exited with status {self.process.returncode}: "
                f"{said or 'no message'}"
            )

    def _ssh(self, command: str) -> list[str]:
        return [
            "ssh",
            "-i", str(self.key),
            "-p", str(self.port),
            "-o", "BatchMode=yes",
            *pinned_host_key(str(self.known_hosts), ALIAS),
            "-o", "LogLevel=ERROR",
            "-o", "ConnectTimeout=10",
            "-o", "IdentitiesOnly=yes",
            "-o", "ServerAliveInterval=15",
            "-o", "ServerAliveCountMax=8",
            "--",
            "root@127.0.0.1",
            command,
        ]  # fmt: skip

    def wait_ready(self, timeout: float, status: Status, name: str) -> None:
        """Until the guest's sshd accepts the builder key and cloud-init is done; `status`
        hears how long it has been booting and the console's last line."""
        started = time.monotonic()
        ready = "command -v cloud-init >/dev/null && cloud-init status --wait >/dev/null; true"
        while True:
            self._check_alive()
            status(name, "builder VM booting", consolelog.last_line(self.console))
            try:
                result = subprocess.run(
                    self._ssh(ready), capture_output=True, stdin=subprocess.DEVNULL, timeout=600
                )
            except subprocess.TimeoutExpired:  # cloud-init never finished
                raise Failure(
                    f"the builder VM's cloud-init did not finish in 600 s; its console ends "
                    f"with:\n{self.console_tail()}"
                ) from None
            if result.returncode == 0:
                status(name, "", "")
                self.say(f"builder ready in {time.monotonic() - started:.1f} s")
                return
            if time.monotonic() - started > timeout:
                raise Failure(
                    f"the builder VM did not answer on SSH in {timeout:.0f} s; its console "
                    f"ends with:\n{self.console_tail()}"
                )
            time.sleep(1)

    def console_tail(self, size: int = 2000) -> str:
        return terminal_safe(consolelog.tail_bytes(self.console, size).decode(errors="replace"))

    def run(self, script: str, data: bytes) -> int:
        """Run a step as root, its output streamed line by line; then sync the guest."""
        command = remote_command(["/bin/sh", "-c", script]) + "; rc=$?; sync; exit $rc"
        process = subprocess.Popen(
            self._ssh(command),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        assert process.stdin is not None and process.stdout is not None
        with contextlib.suppress(BrokenPipeError):
            process.stdin.write(data)
        process.stdin.close()
        # A step's line can be endless (`yes | tr -d '\n'`): shown in pieces of 64 KiB.
        stdout = process.stdout
        for line in iter(lambda: stdout.readline(64 << 10), b""):
            self.say(line.decode(errors="replace").rstrip("\n"))
        code = process.wait()
        if code == 255:
            self._check_alive()
            raise Failure(f"lost the SSH connection to the builder VM:\n{self.console_tail()}")
        return code

    def snapshot(self, path: Path) -> None:
        """Close the current layer: QEMU flushes it and writes to a new overlay on it."""
        reply = self.qmp.cmd_obj(
            {
                "execute": "blockdev-snapshot-sync",
                "arguments": {"device": "root", "snapshot-file": str(path), "format": "qcow2"},
            }
        )
        if "error" in reply:
            raise Failure(f"snapshot of the builder's disk failed: {reply['error'].get('desc')}")

    def shutdown(self, timeout: float = 600) -> None:
        """ACPI power button, then wait: the guest flushes its caches and powers off."""
        self.qmp.cmd_obj({"execute": "system_powerdown"})
        assert self.process is not None
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired as exc:
            raise Failure(f"the builder VM did not power off in {timeout:.0f} s") from exc

    def kill(self) -> None:
        if self.qmp is not None:
            with contextlib.suppress(Exception):
                self.qmp.close()
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()


# -- main ----------------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog=PROG, description="Build a service's image.")
    parser.add_argument("--spec", required=True, type=Path)
    parser.add_argument("--images", type=Path)
    parser.add_argument("--project-dir", type=Path)
    parser.add_argument("--no-cache", action="store_true")
    parser.add_argument("--boot-timeout", type=float, default=900.0)
    return parser.parse_args(argv)


def say(line: str) -> None:
    print(line, flush=True)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``holos-bake``; returns the exit code."""
    try:
        args = parse_args(argv)
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else 2
    try:
        spec = load_spec(args.spec)
        project_dir = args.project_dir or args.spec.parent / "project"
        cache = Cache(args.images or images_dir("--images"))
        bake(spec, cache, project_dir, say, no_cache=args.no_cache, boot_timeout=args.boot_timeout)
    except Failure as exc:
        print(f"{PROG}: {exc}", file=sys.stderr, flush=True)
        return exc.code
    except (ImageFailure, OSError) as exc:  # no images directory, or not ours
        print(f"{PROG}: {exc}", file=sys.stderr, flush=True)
        return 1
    except KeyboardInterrupt:
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
