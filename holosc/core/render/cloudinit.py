"""cloud-init NoCloud documents of one instance: user-data, meta-data, network-config.

All three are YAML built as data and written by `escape.yaml_document`. The guest gets
its host name, the project's /etc/hosts, its login user, the Dockerfile provisioning, the
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
from holosc.core.render import secrets
from holosc.core.render.escape import fstab_field, shell_word, yaml_document
from holosc.core.render.guestenv import environment_files
from holosc.core.validate import dockerfile

# No "127.0.1.1 <hostname>" line: the instance's own name is listed below with its private
# IP, and glibc would answer 127.0.1.1 first (a replica would advertise loopback to peers).
HOSTS_HEADER = (
    "127.0.0.1 localhost\n"
    "::1 localhost ip6-localhost ip6-loopback\n"
    "ff02::1 ip6-allnodes\n"
    "ff02::2 ip6-allrouters\n"
)


def hosts_file(plan: P.Plan) -> str:
    """/etc/hosts, the same for every instance: built once per plan, not per instance (a
    build of n instances would otherwise format n^2 lines)."""
    if not (_last_hosts and _last_hosts[0][0] is plan):
        lines = [HOSTS_HEADER, "# holos project " + plan.project.name]
        lines += [f"{ip} {' '.join(names)}" for ip, names in plan.hosts()]
        _last_hosts[:] = [(plan, "\n".join(lines) + "\n")]
    return _last_hosts[0][1]


_last_hosts: list[tuple[P.Plan, str]] = []


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


def user_data_doc(plan: P.Plan, inst: P.Instance, *, etc_hosts: bool = True) -> dict[str, Any]:
    """The user-data of `inst` as data; `etc_hosts=False` leaves /etc/hosts alone (a
    cluster resolves names through its DNS instead, see holosc/export)."""
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
        "manage_etc_hosts": False,  # /etc/hosts is written below with every instance
        "ssh_pwauth": False,
    }
    if ci.packages:
        doc |= {"package_update": True, "packages": list(ci.packages)}
    # `user:` makes the login user cloud-init's default user: the project key that
    # holos-seed adds as vendor-data `ssh_authorized_keys` is installed for it. (A
    # vendor-data `users:` entry would be shadowed by this one: measured, see units.md.)
    doc["user"] = user
    files = []
    if etc_hosts:
        files.append(
            {
                "path": "/etc/hosts",
                "content": hosts_file(plan),
                "permissions": "0644",
                "owner": "root:root",
            }
        )
    runcmd: list[Any] = []
    if service.provisioning is not None:
        files += [_file(f) for f in service.provisioning.files]
        files.append(_file(WriteFile(dockerfile.SCRIPT_PATH, service.provisioning.script, "0755")))
        runcmd.append(["bash", dockerfile.SCRIPT_PATH])
    files += [_file(f) for f in environment_files(service)]
    files += [_file(f) for f in ci.write_files]
    doc["write_files"] = files
    bootcmd = [list(c) if isinstance(c, tuple) else c for c in ci.bootcmd]
    install_secrets = secrets.guest_command(service)
    if install_secrets:
        bootcmd.insert(0, install_secrets)
    if bootcmd:
        doc["bootcmd"] = bootcmd
    binds = service.binds
    # Mounts first, so the user's runcmd finds its data in place.
    runcmd[:0] = [mount_command(m, binds.index(m) if m in binds else None) for m in service.mounts]
    runcmd += [list(c) if isinstance(c, tuple) else c for c in ci.runcmd]
    if runcmd:
        doc["runcmd"] = runcmd
    return doc


def network_config(inst: P.Instance) -> str:
    return yaml_document(
        {
            "version": 2,
            "ethernets": {
                "external": {"match": {"macaddress": inst.mac_user}, "dhcp4": True},
                "internal": {
                    "match": {"macaddress": inst.mac_internal},
                    "dhcp4": False,
                    "addresses": [f"{inst.ip}/24"],
                },
            },
        }
    )


def meta_data(plan: P.Plan, inst: P.Instance, user_data_text: str, network: str) -> str:
    """instance-id changes with the seed, so cloud-init re-applies an edited config."""
    digest = hashlib.sha256((user_data_text + network).encode()).hexdigest()[:12]
    return yaml_document(
        {
            "instance-id": f"{plan.project.name}-{inst.name}-{digest}",
            "local-hostname": inst.name,
        }
    )
