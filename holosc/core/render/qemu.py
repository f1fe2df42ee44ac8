"""The launch script of one instance: preparation, then `exec qemu-system-x86_64`.

Every QEMU argument is one shell word built by `escape.shell_word`; values inside
option strings go through `escape.qemu_value` (at compile time) or through a `*_q`
shell variable whose commas the script doubles (at run time, for host paths); the
machine type and the CPU model through `qemu_name` and `qemu_cpu`. A share's directory
reaches the C virtiofsd's `-o source=` through `fuse_value_at_run_time`.
"""

from __future__ import annotations

import hashlib
import posixpath
import re
from collections.abc import Sequence
from importlib import resources
from pathlib import PurePosixPath
from typing import Any

from holos_runtime import consolelog

from holosc.core import layout
from holosc.core import plan as P
from holosc.core.model import MountKind, Secret, Service
from holosc.core.render import hosts, units
from holosc.core.render.escape import (
    ShellVar,
    fuse_value_at_run_time,
    qemu_cpu,
    qemu_name,
    qemu_value,
    qemu_value_at_run_time,
    shell_word,
)
from holosc.core.render.secrets import fw_cfg_name

Word = Sequence[str]  # literal strings and ShellVar names, concatenated

# Socket names of the NAT NIC (runtime-helpers/switch.py wires them together).
NAT_SOCKET = "nat.sock"  # the switch's
NAT_GUEST = "nat.sock"  # the guest NIC's, in the instance's runtime directory
NAT_GUEST_HOST = "nat-host.sock"  # the same, for a service with host-gateway
NAT_SLIRP = "slirp.sock"  # slirp's side of the hub


def _var(name: str) -> ShellVar:
    return ShellVar(name)


def host_path(path: str, var: str = "project") -> list[str]:
    """A holos.yaml path as shell-word parts: absolute stays, relative joins $project."""
    if path.startswith("/"):
        return [path]
    rel = posixpath.normpath(path)
    return [_var(var)] if rel == "." else [_var(var), "/" + rel]


def host_path_q(path: str) -> list[str]:
    """Like host_path, for use inside a QEMU option string."""
    return [
        qemu_value(p) if not isinstance(p, ShellVar) else p for p in host_path(path, "project_q")
    ]


def overlay_command(project: str, service: Service) -> list[Word]:
    """`holos-image overlay`: the instance's disk, created once on the image's digest (a
    registry image), its built image (a Dockerfile) or file (a local image, which must
    not change afterwards)."""
    image = service.image
    argv: list[Word] = [
        [units.IMAGE],
        ["overlay"],
        ["--disk"],
        [_var("state"), "/root.qcow2"],
        ["--format"],
        ["qcow2" if service.build is not None else image.format],
    ]
    if service.vm.disk_size:
        argv += [["--size"], [str(service.vm.disk_size)]]
    if service.build is not None:
        tag = layout.build_tag(project, service.name)
        return [*argv, ["--build"], [tag], ["--images"], [_var("images")]]
    if image.path is not None:
        return [*argv, ["--file"], host_path(image.path)]
    return [*argv, ["--ref"], [image.ref], ["--images"], [_var("images")]]


def secret_path(secret: Secret, *, quoted: bool = False) -> list[str]:
    """Where QEMU reads a secret: the user's file, or what `holosc up` wrote for a
    variable into the project's runtime directory (tmpfs, mode 0700)."""
    if secret.file is not None:
        return host_path_q(secret.file) if quoted else host_path(secret.file)
    return [_var("run_q" if quoted else "run"), f"/../secrets/{secret.name}"]


def _secret_checks(plan: P.Plan, service: Service) -> list[str]:
    """A clear message instead of QEMU's when a secret's host file is not there."""
    lines = []
    for use in service.secrets:
        secret = plan.project.secret(use.source)
        path = shell_word(secret_path(secret))
        why = (
            f"cannot read {path}"
            if secret.file is not None
            else f"it comes from the variable {secret.environment} at holosc up: run holosc up"
        )
        lines.append(f"[ -r {path} ] || die {shell_word(f'secret {secret.name}:')} {why}")
    return lines


def _uses_project(service: Service, plan: P.Plan) -> bool:
    paths = [
        service.image.path,
        service.vm.kernel,
        service.vm.initrd,
        *(d.rom_file for d in service.devices),
        *(m.source for m in service.binds),
        *(plan.project.secret(u.source).file for u in service.secrets),
    ]
    return any(p is not None and not p.startswith("/") for p in paths)


def peer_networks(plan: P.Plan, inst: P.Instance) -> list[str]:
    """The instance's networks that have a peer list, in NIC order."""
    return [n.network for n in inst.nics if plan.network(n.network).external is None]


def share_socket(plan: P.Plan, inst: P.Instance, index: int) -> str:
    """The virtiofs socket of bind mount `index`, relative to the runtime directory.

    Unique on the host, not only in the directory: QEMU 7.2's virtiofsd locks a file
    named after the socket path it is given, so two instances' `fs0.sock` collided."""
    digest = hashlib.sha256(f"{plan.project.name}/{inst.name}".encode()).hexdigest()[:12]
    return f"fs{index}-{digest}.sock"


def qemu_args(plan: P.Plan, inst: P.Instance) -> list[Word]:
    """QEMU's argv for one instance, as words of literal text and launch-script variables."""
    service = inst.service
    return [
        *_machine_args(inst),
        *_firmware_args(service),
        *_disk_args(),
        *_network_args(plan, inst),
        *_volume_args(service),
        *_share_args(plan, inst),
        *_device_args(service),
        *_kernel_args(service),
        *_peers_args(plan, inst),
        *_secret_args(plan, service),
        *_balloon_args(service),
        *([a] for a in service.vm.extra_args),
    ]


def _machine_args(inst: P.Instance) -> list[Word]:
    service = inst.service
    vm = service.vm
    machine = qemu_name(vm.machine) + ",accel="
    # QEMU's mem-merge defaults to on: guest RAM would be open to KSM wherever the host
    # runs it. Off unless the service asks (docs/density.md: the side channel).
    merge = f",mem-merge={'on' if vm.ksm else 'off'}"
    return [
        [
            "-name",
        ],
        [inst.name],
        ["-machine"],
        [machine, _var("accel"), merge, ",kernel-irqchip=on" if service.devices else ""],
        ["-cpu"],
        [_var("cpu")],
        ["-smp"],
        [str(vm.vcpu)],
        ["-m"],
        [f"{vm.memory_mb}M"],
        ["-nodefaults"],
        ["-no-user-config"],
        ["-display"],
        ["none"],
        ["-daemonize"],
        ["-pidfile"],
        [_var("run"), "/qemu.pid"],
        ["-chardev"],
        [
            "socket,id=console0,path=serial.sock,server=on,wait=off,logfile=",
            _var("state_q"),
            "/console.log,logappend=on",
        ],
        ["-serial"],
        ["chardev:console0"],
        ["-chardev"],
        ["socket,id=qmp,path=qmp.sock,server=on,wait=off"],
        ["-mon"],
        ["chardev=qmp,mode=control"],
        ["-device"],
        ["virtio-rng-pci"],
    ]


def _firmware_args(service: Service) -> list[Word]:
    if not service.vm.uefi:
        return []
    return [
        ["-drive"],
        ["if=pflash,format=raw,readonly=on,file=", _var("ovmf_code_q")],
        ["-drive"],
        ["if=pflash,format=raw,file=", _var("state_q"), "/OVMF_VARS.fd"],
    ]


def _disk_args() -> list[Word]:
    # Explicit devices, in this order: QEMU creates `-drive if=virtio` disks after every
    # `-device`, so a volume would become /dev/vda ahead of the root disk.
    return [
        ["-drive"],
        [
            "id=root,if=none,format=qcow2,cache=writeback,discard=unmap,file=",
            _var("state_q"),
            "/root.qcow2",
        ],
        ["-device"],
        ["virtio-blk-pci,drive=root"],
        ["-drive"],
        # Built by holos-seed (ExecStartPre) from the compiled texts and this host's keys.
        ["id=seed,if=none,format=raw,readonly=on,file=", _var("run_q"), "/seed.iso"],
        ["-device"],
        ["virtio-blk-pci,drive=seed"],
    ]


def _network_args(plan: P.Plan, inst: P.Instance) -> list[Word]:
    """Every NIC is a datagram socket to the project's switch (docs/units.md,
    "Networks"): QEMU binds its end in the instance's runtime directory as
    `../<inst>/NAME`, a name the switch resolves from its own directory beside it, and
    sends to the switch's absolute path (after -daemonize QEMU works in /).

    The NAT NIC (net0) reaches slirp only through the switch's filter: slirp sits on a
    QEMU hub with a second datagram socket, so the guest has no direct path to it. NICs
    are `nic<i>` on netdev `net<i>` for QMP: 0 the NAT's, then the networks in name order."""
    fwd = "".join(f",hostfwd=tcp:127.0.0.1:{f.host}-:{f.guest}" for f in inst.forwards)
    here = f"../{qemu_value(inst.name)}/"
    networks = [plan.network(n.network) for n in inst.nics]
    # compose's internal: no route out. A service only on internal networks gets no NAT;
    # restrict=on keeps the host's port forwards (SSH, published ports) working.
    restrict = ",restrict=on" if networks and all(n.internal for n in networks) else ""
    guest = NAT_GUEST_HOST if inst.service.host_gateway else NAT_GUEST

    def dgram(ident: str, local: str, remote: str) -> list[Word]:
        return [
            ["-netdev"],
            [
                f"dgram,id={ident},local.type=unix,local.path={here}{local},"
                "remote.type=unix,remote.path=",
                _var("switch_q"),
                f"/{remote}",
            ],
        ]

    nics: list[Word] = [
        ["-netdev"],
        [f"user,id=slirp,ipv6=off{restrict}{fwd},hostfwd=tcp:127.0.0.1:{inst.ssh_port}-:22"],
        ["-netdev"],
        ["hubport,id=slirp-port,hubid=0,netdev=slirp"],
        *dgram("slirp-link", NAT_SLIRP, NAT_SOCKET),
        ["-netdev"],
        ["hubport,id=slirp-link-port,hubid=0,netdev=slirp-link"],
        *dgram("net0", guest, NAT_SOCKET),
        ["-device"],
        [f"virtio-net-pci,id=nic0,netdev=net0,mac={inst.mac_user}"],
    ]
    for index, (nic, network) in enumerate(zip(inst.nics, networks, strict=True), start=1):
        if network.external is not None:
            # The host's bridge (system scope): QEMU creates the tap, which goes with it,
            # and runs the script launch.sh wrote to put it on the bridge.
            netdev: Word = [
                f"tap,id=net{index},ifname={tap_name(plan, inst, network.name)},script=",
                _var("run_q"),
                f"/{ifup_script(network.name)},downscript=no",
            ]
        else:
            sock = layout.network_socket(network.name)
            netdev = dgram(f"net{index}", sock, sock)[1]
        nics += [
            ["-netdev"],
            netdev,
            ["-device"],
            [f"virtio-net-pci,id=nic{index},netdev=net{index},mac={nic.mac}"],
        ]
    return nics


def tap_name(plan: P.Plan, inst: P.Instance, network: str) -> str:
    """An instance's tap on an external network: 15 bytes at most (IFNAMSIZ), unique on
    the host, and recognisable as holos's."""
    digest = hashlib.sha256(f"{plan.project.name}/{inst.name}/{network}".encode()).hexdigest()
    return f"holos{digest[:10]}"


def ifup_script(network: str) -> str:
    """The script QEMU runs with a new tap on `network`'s bridge, in the runtime directory."""
    return f"ifup-{layout.network_id(network)}"


def _volume_args(service: Service) -> list[Word]:
    args: list[Word] = []
    for mount in service.mounts:
        if mount.kind is MountKind.VOLUME:
            vol = f"vol-{mount.source}"
            serial = layout.volume_serial(mount.source)
            ro = ",readonly=on" if mount.read_only else ""
            args += [
                ["-drive"],
                [
                    f"id={vol},if=none,format=qcow2,cache=writeback,discard=unmap,file=",
                    _var("volumes_q"),
                    f"/{mount.source}.qcow2{ro}",
                ],
                ["-device"],
                [f"virtio-blk-pci,drive={vol},serial={serial}"],
            ]
    return args


def _share_args(plan: P.Plan, inst: P.Instance) -> list[Word]:
    binds = inst.service.binds
    if not binds:
        return []
    # vhost-user needs guest RAM the virtiofsd processes can map.
    args: list[Word] = [
        ["-object"],
        [f"memory-backend-memfd,id=mem,size={inst.service.vm.memory_mb}M,share=on"],
        ["-numa"],
        ["node,memdev=mem"],
    ]
    for i, _ in enumerate(binds):
        args += [
            ["-chardev"],
            [f"socket,id=fs{i},path={share_socket(plan, inst, i)}"],
            ["-device"],
            [f"vhost-user-fs-pci,chardev=fs{i},tag=share{i}"],
        ]
    return args


def _device_args(service: Service) -> list[Word]:
    args: list[Word] = []
    for device in service.devices:
        rom = [",romfile=", *host_path_q(device.rom_file)] if device.rom_file else []
        args += [["-device"], [f"vfio-pci,host={device.pci}", *rom]]
    return args


def _kernel_args(service: Service) -> list[Word]:
    vm = service.vm
    if not vm.kernel:
        return []
    args: list[Word] = [["-kernel"], host_path(vm.kernel)]
    if vm.initrd:
        args += [["-initrd"], host_path(vm.initrd)]
    if vm.cmdline is not None:
        args += [["-append"], [vm.cmdline]]
    return args


def _peers_args(plan: P.Plan, inst: P.Instance) -> list[Word]:
    """The peer lists of the instance's networks (render/hosts.py), which QEMU reads at
    each start (an external network has none: the LAN's DHCP and DNS name its hosts)."""
    args: list[Word] = []
    for index, network in enumerate(peer_networks(plan, inst)):
        path = [_var("here_q"), f"/../{layout.peers_name(network)}"]
        args += [["-fw_cfg"], [f"name={hosts.fw_cfg_name(index)},file=", *path]]
    return args


def _balloon_args(service: Service) -> list[Word]:
    """virtio-balloon for free page reporting: the guest hands free 2 MiB blocks back and
    QEMU discards them (QEMU >= 5.1; the guest needs virtio_balloon, which Debian, Ubuntu
    and Fedora kernels have). Last of the PCI devices, so that adding it moved no disk or
    NIC of an existing guest to another slot. Nothing inflates the balloon: memory_mb stays
    the guest's maximum; deflate-on-oom lets the guest take back what someone inflates by
    hand over QMP rather than run out."""
    if not service.vm.free_page_reporting:
        return []
    return [
        ["-device"],
        ["virtio-balloon-pci,id=balloon0,free-page-reporting=on,deflate-on-oom=on"],
    ]


def _secret_args(plan: P.Plan, service: Service) -> list[Word]:
    args: list[Word] = []
    for i, use in enumerate(service.secrets):
        path = secret_path(plan.project.secret(use.source), quoted=True)
        args += [["-fw_cfg"], [f"name={fw_cfg_name(i)},file=", *path]]
    return args


def _launch_context(plan: P.Plan, inst: P.Instance) -> dict[str, Any]:
    service = inst.service
    args = qemu_args(plan, inst)
    quoted = [shell_word(w) for w in args]
    # Pair each option with its value on one line, for review.
    lines: list[str] = []
    for word in quoted:
        if (
            lines
            and lines[-1].startswith("-")
            and " " not in lines[-1]
            and not word.startswith("-")
            and lines[-1] not in _FLAGS
        ):
            lines[-1] += " " + word
        else:
            lines.append(word)
    uses_project = _uses_project(service, plan)
    overlay = overlay_command(plan.project.name, service)
    parts: list[Word] = [
        *args,
        *overlay,
        *(host_path(m.source) for m in service.binds),
        *(secret_path(plan.project.secret(u.source)) for u in service.secrets),
    ]
    used = {p for w in parts for p in w if isinstance(p, ShellVar)}
    escaped = [
        v for v in ("here", "state", "volumes", "run", "project", "switch") if f"{v}_q" in used
    ]
    binds = service.binds
    return dict(
        instance=inst.name,
        project=plan.project.name,
        unit=layout.instance_unit(plan.project.name, service.name, inst.index),
        switch_dir=layout.switch_sockets(PurePosixPath("."), plan.project.name).name,
        uses_project=uses_project,
        escape_lines=[qemu_value_at_run_time(v) for v in escaped],
        ovmf_escape=qemu_value_at_run_time("ovmf_code"),
        reads_volumes="volumes" in used or "volumes_q" in used,
        reads_images="images" in used or "images_q" in used,
        read_vars=" ".join(
            f'{v}=""' for v in ("volumes", "images") if v in used or f"{v}_q" in used
        ),
        cpu_model=shell_word(qemu_cpu(service.vm.cpu_model)),
        cpu_is_host=service.vm.cpu_model.partition(",")[0] == "host",
        overlay=" ".join(shell_word(w) for w in overlay),
        uefi=service.vm.uefi,
        ovmf_pairs=" \\\n    ".join(f"{code}:{vars_}" for code, vars_ in layout.OVMF_PAIRS),
        virtiofsd_candidates=" ".join(layout.VIRTIOFSD),
        fuse_escape=fuse_value_at_run_time("dir"),
        shares=[
            f"share {share_socket(plan, inst, i)} {shell_word(host_path(m.source))}"
            + (" ro" if m.read_only else " rw")
            for i, m in enumerate(binds)
        ],
        secret_checks=_secret_checks(plan, service),
        console_max=consolelog.MAX_BYTES,
        console_keep=consolelog.KEEP_BYTES,
        bridges=[
            f"bridge {shell_word(ifup_script(n.name))} {shell_word(n.external)}"
            for n in (plan.network(nic.network) for nic in inst.nics)
            if n.external is not None
        ],
        args=lines,
    )


def render_launch(plan: P.Plan, inst: P.Instance) -> str:
    from holosc.core.render.templates import render

    return render("launch.sh.j2", **_launch_context(plan, inst))


def launch_bytes(plan: P.Plan, inst: P.Instance) -> int:
    """About len(render_launch(...)) in bytes, without loading the template engine (for
    validation's output bound): the template's text, plus each inserted value as often as
    the template names it, plus a line break and indentation per list item."""
    template = resources.files("holosc.templates").joinpath("launch.sh.j2").read_text("utf-8")
    size = len(template.encode("utf-8"))
    for name, value in _launch_context(plan, inst).items():
        if isinstance(value, list):
            size += sum(len(str(item).encode("utf-8")) + 8 for item in value)
        else:
            uses = len(re.findall(r"\{\{ *" + name + r"\b", template))
            size += uses * len(str(value).encode("utf-8"))
    return size


_FLAGS = {"-nodefaults", "-no-user-config", "-daemonize"}


def render_volumes_script(plan: P.Plan) -> str:
    used = plan.project.used_volumes
    creates = [
        f"create {shell_word(v.name)} {v.size}" for v in plan.project.volumes if v.name in used
    ]
    from holosc.core.render.templates import render

    return render("volumes.sh.j2", project=plan.project.name, creates=creates)


__all__ = ["qemu_args", "render_launch", "render_volumes_script", "units"]
