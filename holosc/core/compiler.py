"""The pure compiler core: Project → {relative path: file}. No I/O, clock or environment.

Output layout (see docs/units.md):

    holos-<p>.target, holos-<p>-<svc>@.service, holos-<p>-<svc>-healthy.service,
    holos-<p>-volumes.service, holos-<p>-image-<name>-<tag>.service,
    holos-<p>-<svc>-build.service                  → the scope's unit directory
    <p>/volumes.sh, <p>/hosts (peer names: core/render/hosts.py),
    <p>/<svc>.build.json (a Dockerfile's build: core/render/build.py),
    <p>/<svc>-<i>/{launch.sh, user-data, meta-data, network-config}
                                                   → %E/holos/<p>/ (installed by holosc)

The output is a pure function of the project: no key, path, user or time of the building
host. The NoCloud seed ISO is built at start by holos-seed from the three texts plus
this host's keys (docs/units.md, "Host-specific material").
    holos.lock.json                                 what was compiled from what
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Mapping
from pathlib import PurePosixPath
from types import MappingProxyType

from holosc import __version__
from holosc.core import layout
from holosc.core import plan as P
from holosc.core.lock import LOCK_FILE, Lock, LockedInstance
from holosc.core.model import Project

# What a project writes is bounded in bytes, not only the input in values: seeds are written
# once per replica, so 1 MiB of cloud-init content and 20 replicas make 41 MB otherwise.
# A project of 253 small instances compiles to about 20 MB.
MAX_OUTPUT_BYTES = 32 * 1024 * 1024
ISO_OVERHEAD = 72 * 1024  # measured: a seed.iso of small files is 69,632 bytes


@dataclasses.dataclass(frozen=True, slots=True)
class File:
    data: bytes
    mode: int = 0o644


@dataclasses.dataclass(frozen=True)
class Output:
    files: Mapping[PurePosixPath, File]


def compile_project(
    project: Project, sources: Mapping[str, str] | None = None, previous: Lock | None = None
) -> Output:
    """Every file of the compiled project; `sources` maps input names to SHA-256 digests;
    `previous` is the lock of the build this one replaces (its instances keep their
    addresses and ports, see plan.build_plan)."""
    # The renderers (jinja2, PyYAML) load here, not when commands that only read
    # the lock file or the Output type import this module.
    from holosc.core.render import build, cloudinit, hosts, qemu, units

    plan = P.build_plan(project, allocations(previous), previous.networks if previous else None)
    name = project.name
    files: dict[PurePosixPath, File] = {}

    def add(path: str, text: str | bytes, mode: int = 0o644) -> None:
        data = text.encode("utf-8") if isinstance(text, str) else text
        files[PurePosixPath(path)] = File(data, mode)

    add(layout.target_name(name), units.render_target(plan))
    add(layout.console_logs_timer(name), units.render_console_logs_timer(plan))
    add(layout.console_logs_unit(name), units.render_console_logs(plan))
    add(layout.switch_unit(name), units.render_switch(plan))
    for ref in P.registry_images(project):
        add(layout.image_unit(name, ref), units.render_image(plan, ref))
    if project.used_volumes:
        add(layout.volumes_unit(name), units.render_volumes(plan))
        add(f"{name}/volumes.sh", qemu.render_volumes_script(plan), 0o755)
    for net in plan.networks:
        if net.external is None:
            add(f"{name}/{layout.peers_name(net.name)}", hosts.peers(plan, net.name))
    for service, _ in build.builds(project):
        add(layout.build_unit(name, service.name), units.render_build(plan, service))
        add(layout.build_spec(name, service.name), build.spec(project, service))
    for service in project.services:
        add(layout.template_name(name, service.name), units.render_template(plan, service))
        if service.healthcheck is not None:
            add(layout.gate_unit(name, service.name), units.render_gate(plan, service))
    for inst in plan.instances:
        base = f"{name}/{inst.name}"
        user_data = cloudinit.user_data(plan, inst)
        network = cloudinit.network_config(plan, inst)
        meta = cloudinit.meta_data(plan, inst, user_data, network)
        seed_files = {"user-data": user_data, "meta-data": meta, "network-config": network}
        for file_name, text in seed_files.items():
            add(f"{base}/{file_name}", text)
        add(f"{base}/launch.sh", qemu.render_launch(plan, inst), 0o755)
    add(LOCK_FILE, _lock(project, plan, files, sources or {}))
    return Output(MappingProxyType(dict(sorted(files.items()))))


def output_bytes(project: Project) -> dict[str, int]:
    """About how many bytes each service writes, all replicas together: its compiled
    files (its first instance is rendered; replicas differ only in names and addresses)
    and the seed.iso holos-seed builds from them at start (the seed texts plus the ISO's
    own overhead). Loads no template engine: `holosc validate` calls it."""
    from holosc.core.render import cloudinit, qemu

    plan = P.build_plan(project)
    sizes = {}
    for service in project.services:
        if not plan.of(service):  # replicas: 0
            continue
        inst = plan.of(service)[0]
        user_data = cloudinit.user_data(plan, inst)
        network = cloudinit.network_config(plan, inst)
        meta = cloudinit.meta_data(plan, inst, user_data, network)
        seed_bytes = sum(len(t.encode("utf-8")) for t in (user_data, network, meta))
        launch = qemu.launch_bytes(plan, inst)
        sizes[service.name] = (2 * seed_bytes + ISO_OVERHEAD + launch) * service.replicas
    return sizes


def _lock(
    project: Project, plan: P.Plan, files: Mapping[PurePosixPath, File], sources: Mapping[str, str]
) -> str:
    return Lock(
        compiler=f"holosc {__version__}",
        project=project.name,
        profiles=project.profiles,
        sources=dict(sorted(sources.items())),
        instances={
            i.name: LockedInstance(
                service=i.service.name,
                ip=i.ip,
                ssh_port=i.ssh_port,
                user=i.service.cloud_init.user,
                ports=tuple(f"{f.host}:{f.guest}" for f in i.forwards),
                networks={n.network: n.ip for n in i.nics if n.ip},
                volumes=tuple(
                    sorted({m.source for m in i.service.named_volumes if not m.read_only})
                ),
            )
            for i in plan.instances
        },
        networks={n.name: n.subnet for n in plan.networks if n.subnet},
        files={str(path): hashlib.sha256(f.data).hexdigest() for path, f in files.items()},
    ).to_json()


def allocations(lock: Lock | None) -> dict[str, P.Allocation]:
    """What a previous build's lock gave each instance. A lock is a file people commit and
    edit: build_plan keeps only what is still valid; a forward that is not host:guest is
    left out here."""
    found = {}
    for name, inst in (lock.instances if lock else {}).items():
        forwards = (_forward(p) for p in inst.ports)
        found[name] = P.Allocation(
            dict(inst.networks), inst.ssh_port, tuple(f for f in forwards if f)
        )
    return found


def _forward(text: str) -> P.Forward | None:
    host, _, guest = text.partition(":")
    if not (host.isdigit() and guest.isdigit() and len(host) <= 5 and len(guest) <= 5):
        return None
    return P.Forward(int(host), int(guest))
