"""cloud-init NoCloud documents of one instance: user-data, meta-data, network-config.

All three are YAML built as data and written by `escape.yaml_document`. The guest gets
its host name, the boot command that writes /etc/hosts from the project's peer list
(render/hosts.py), its login user, the Dockerfile provisioning (cluster export only), the
user's cloud_init, and mount lines for volumes and binds. Nothing of the building host:
the project key and the guest's SSH host key are joined at start by holos-seed as
vendor-data (see docs/units.md, "Host-specific material").
"""

from __future__ import annotations

import hashlib
from typing import Any

from holosc.core import layout
from holosc.core import plan as P
from holosc.core.model import Mount, MountKind, OsFamily, WriteFile
from holosc.core.render import hosts, secrets
from holosc.core.render.escape import fstab_field, shell_word, yaml_document
from holosc.core.render.guestenv import environment_files
from holosc.core.validate import dockerfile


def _file(wf: WriteFile) -> dict[str, Any]:
    return {
        "path": wf.path,
        "content": wf.content,
        "permissions": wf.permissions,
        "owner": wf.owner,
    }


def mount_command(mount: Mount, share_index: int | None) -> str:
    """An idempotent shell line that formats (volumes, rw, once) and mounts at boot."""
    q = shell_word
    target = q(mount.target)
    field = fstab_field(mount.target)
    if mount.kind is MountKind.VOLUME:
        dev = layout.volume_device(mount.source)
        opts = "ro,nofail" if mount.read_only else "defaults,nofail"
        steps = [f"udevadm settle --exit-if-exists={q(dev)} || true"]
        if not mount.read_only:
            steps.append(
                f"if [ -b {q(dev)} ] && ! blkid {q(dev)} >/dev/null 2>&1; then "
                # ext4 labels hold 16 bytes
                f"mkfs.ext4 -q -F -L {q(layout.volume_serial(mount.source)[:16])} {q(dev)}; fi"
            )
        fstab = f"{dev} {field} ext4 {opts} 0 2"
        what = f"volume {mount.source}"
    else:
        opts = "ro,nofail" if mount.read_only else "defaults,nofail"
        fstab = f"share{share_index} {field} virtiofs {opts} 0 0"
        what = f"bind mount {mount.source}"
        steps = []
    # printf, not echo: dash's echo would turn fstab's \040 back into a space.
    steps += [
        f"mkdir -p {target}",
        f"{{ grep -qF {q(' ' + field + ' ')} /etc/fstab "
        f"|| printf '%s\\n' {q(fstab)} >> /etc/fstab; }}",
        f"{{ mountpoint -q {target} || mount {target} || "
        f"{{ printf '%s\\n' {q(f'holos: failed to mount {what} at {mount.target}')} >&2; "
        "exit 1; }; }",
    ]
    return " && ".join(steps)


def user_data(plan: P.Plan, inst: P.Instance) -> str:
    return "#cloud-config\n" + yaml_document(user_data_doc(plan, inst))


def user_data_doc(
    plan: P.Plan, inst: P.Instance, *, etc_hosts: bool = True, first_boot_build: bool = False
) -> dict[str, Any]:
    """The user-data of `inst` as data. Nothing in it names another instance (peers come
    from the project's hosts file at boot). `etc_hosts=False` leaves /etc/hosts alone (a
    cluster resolves names through its DNS instead, see holosc/export). A Dockerfile's
    steps are in the image the instance boots (holos-bake); `first_boot_build` runs them
    at first boot instead, for a cluster, which has no builder."""
    service = inst.service
    ci = service.cloud_init
    keys = [*ci.ssh_authorized_keys]
    user: dict[str, Any] = {"name": ci.user}
    if service.image.os is OsFamily.SYSTEMD:
        user |= {"groups": ["adm"], "shell": "/bin/bash", "sudo": "ALL=(ALL) NOPASSWD:ALL"}
    else:
        user |= {"shell": "/bin/sh", "doas": ["permit nopass " + ci.user]}
    user["lock_passwd"] = True
    if keys:
        user["ssh_authorized_keys"] = keys
    doc: dict[str, Any] = {
        "hostname": inst.name,
        "manage_etc_hosts": False,  # the boot command below writes it, every boot
        "ssh_pwauth": False,
    }
    if ci.packages:
        doc |= {"package_update": True, "packages": list(ci.packages)}
    # `user:` makes the login user cloud-init's default user: the project key that
    # holos-seed adds as vendor-data `ssh_authorized_keys` is installed for it. (A
    # vendor-data `users:` entry would be shadowed by this one: measured, see units.md.)
    doc["user"] = user
    files = []
    runcmd: list[Any] = []
    if service.build is not None and first_boot_build:
        provisioning = service.build.first_boot
        files += [_file(f) for f in provisioning.files]
        files.append(_file(WriteFile(dockerfile.SCRIPT_PATH, provisioning.script, "0755")))
        runcmd.append(["bash", dockerfile.SCRIPT_PATH])
    files += [_file(f) for f in environment_files(service)]
    files += [_file(f) for f in ci.write_files]
    if files:
        doc["write_files"] = files
    bootcmd = [list(c) if isinstance(c, tuple) else c for c in ci.bootcmd]
    install_secrets = secrets.guest_command(service)
    if install_secrets:
        bootcmd.insert(0, install_secrets)
    if etc_hosts:
        lists = sum(1 for n in inst.nics if plan.network(n.network).external is None)
        bootcmd.insert(0, hosts.boot_command(service, lists))
    if bootcmd:
        doc["bootcmd"] = bootcmd
    binds = service.binds
    # Mounts first, so the user's runcmd finds its data in place.
    runcmd[:0] = [mount_command(m, binds.index(m) if m in binds else None) for m in service.mounts]
    runcmd += [list(c) if isinstance(c, tuple) else c for c in ci.runcmd]
    if runcmd:
        doc["runcmd"] = runcmd
    return doc


def network_config(plan: P.Plan, inst: P.Instance) -> str:
    """netplan v2: the NAT NIC by DHCP from QEMU's user-mode network, each project
    network's NIC with its address (no gateway: a network is one segment), an external
    network's NIC by DHCP from the host's LAN."""
    ethernets: dict[str, Any] = {
        "nat": {"match": {"macaddress": inst.mac_user}, "dhcp4": True},
    }
    for nic in inst.nics:
        network = plan.network(nic.network)
        entry: dict[str, Any] = {"match": {"macaddress": nic.mac}}
        if network.external is not None:
            # The LAN's router comes second to the NAT's (holos exec and health need it).
            entry |= {"dhcp4": True, "dhcp4-overrides": {"route-metric": 200}}
        else:
            # Jumbo frames: each frame costs the switch one hop in Python, whatever its
            # size (docs/units.md, "Networks"); nothing routes off a project network.
            entry |= {
                "dhcp4": False,
                "addresses": [f"{nic.ip}/{network.prefix}"],
                "mtu": P.NETWORK_MTU,
            }
        ethernets[f"net-{nic.network}"] = entry
    return yaml_document({"version": 2, "ethernets": ethernets})


def meta_data(plan: P.Plan, inst: P.Instance, user_data_text: str, network: str) -> str:
    """instance-id changes with the seed, so cloud-init re-applies an edited config."""
    digest = hashlib.sha256((user_data_text + network).encode()).hexdigest()[:12]
    return yaml_document(
        {
            "instance-id": f"{plan.project.name}-{inst.name}-{digest}",
            "local-hostname": inst.name,
        }
    )
