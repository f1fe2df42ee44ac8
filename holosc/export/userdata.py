"""The cloud-init user-data of a service on a cluster: what `build` compiles, changed only
where a cluster must differ (docs/kubevirt.md, "cloud-init on the cluster").

The compiler's renderer (holosc.core.render.cloudinit) writes it; this module chooses its
inputs and applies the documented differences, each in one place:

1. no peer lists in /etc/hosts: names resolve through cluster DNS; the boot command
   writes only the service's `extra_hosts` (none: no boot command), and
   `manage_etc_hosts: localhost` keeps the guest's own name resolvable;
2. no `hostname`: one template serves every replica of a pool, so the name comes from the
   meta-data KubeVirt generates (the VMI's hostname, `<svc>-<i>`);
3. no bind-mount lines: bind mounts are not exported;
4. `qemu-guest-agent` installed and started first: it injects the project SSH key from a
   Secret (KubeVirt's accessCredentials; `build` adds it at run time as vendor-data, so
   neither user-data holds it) and runs the readinessProbe of a healthcheck;
5. no secrets boot command: secrets are not exported (they reach a guest through QEMU's
   fw_cfg on the host; a warning names each);
6. one wait per `depends_on` entry, before everything else of runcmd: Kubernetes has no
   start order, so first boot waits until the dependency's name resolves (cluster DNS
   lists ready instances only).
"""

from __future__ import annotations

import dataclasses
from typing import Any

from holosc.core import plan as P
from holosc.core.model import OsFamily, Project, Service
from holosc.core.render import hosts
from holosc.core.render.cloudinit import user_data_doc
from holosc.core.render.escape import shell_word, yaml_document

AGENT_PACKAGE = "qemu-guest-agent"
WAIT_SECONDS = 600


def start_agent(os_family: OsFamily) -> str:
    if os_family is OsFamily.OPENRC:
        return f"rc-update add {AGENT_PACKAGE} default && rc-service {AGENT_PACKAGE} start"
    return f"systemctl start {AGENT_PACKAGE}"


def wait_for(name: str) -> str:
    """A first-boot line that waits until `name` resolves, and fails runcmd if it never does."""
    q = shell_word
    loop = f"until getent hosts {q(name)} >/dev/null; do sleep 2; done"
    message = f"holos: {name} did not become ready within {WAIT_SECONDS} s"
    return f"timeout {WAIT_SECONDS} sh -c {q(loop)} || {{ echo {q(message)} >&2; exit 1; }}"


def cluster_project(project: Project) -> Project:
    """The project as the renderer sees it on a cluster: no bind mounts, no secrets."""
    services = tuple(
        dataclasses.replace(s, mounts=s.named_volumes, secrets=()) for s in project.services
    )
    return dataclasses.replace(project, services=services)


def user_data(project: Project, service: Service) -> str:
    """The user-data shared by every instance of `service` on the cluster."""
    cluster = cluster_project(project)
    plan = P.build_plan(cluster)
    inst = plan.of(cluster.service(service.name))[0]
    doc: dict[str, Any] = user_data_doc(plan, inst, etc_hosts=False, first_boot_build=True)
    if service.extra_hosts:  # host-gateway among them is an export error (kubevirt.py)
        boot = [hosts.boot_command(service, 0), *doc.get("bootcmd", [])]
        doc = _put_after(doc, "write_files" if "write_files" in doc else "user", {"bootcmd": boot})
    del doc["hostname"]
    doc["manage_etc_hosts"] = "localhost"
    packages = list(doc.get("packages", []))
    if AGENT_PACKAGE not in packages:
        packages.append(AGENT_PACKAGE)
    doc = _put_after(doc, "ssh_pwauth", {"package_update": True, "packages": packages})
    first = [start_agent(service.image.os), *(wait_for(d.service) for d in service.depends_on)]
    doc["runcmd"] = [*first, *doc.get("runcmd", [])]
    return "#cloud-config\n" + yaml_document(doc)


def _put_after(doc: dict[str, Any], key: str, values: dict[str, Any]) -> dict[str, Any]:
    """`doc` with `values` set, new keys placed after `key` (where the renderer puts them)."""
    out: dict[str, Any] = {}
    for k, v in doc.items():
        if k in values:
            continue
        out[k] = v
        if k == key:
            out |= values
    return out
