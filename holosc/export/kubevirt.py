"""Project → Kubernetes manifests for KubeVirt and CDI (`holosc export kubevirt`).

Pure like the compiler: the same project and options give the same manifests, byte for
byte, on any machine (no key, clock or host is read). docs/kubevirt.md is the contract:
its mapping table says what each holos.yaml field becomes and what does not carry over.

Per service: a VirtualMachine `<svc>-0` (replicas 1) or a VirtualMachinePool `<svc>`
whose VMs are `<svc>-<i>`, so instance names stay those of `build`; a headless Service
`<svc>` that gives the service (and, as `<svc>-<i>.<svc>`, each instance) its DNS name;
a Service `<svc>-ports` for published ports. Per named volume a PersistentVolumeClaim;
per local image a DataVolume to upload it into.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import re
from collections.abc import Mapping
from pathlib import PurePosixPath
from types import MappingProxyType
from typing import Any

from holosc import __version__
from holosc.core import images, layout
from holosc.core import plan as P
from holosc.core.compiler import File, Output
from holosc.core.document import Document, JsonPath, format_path
from holosc.core.model import HOST_GATEWAY, Mount, Project, Restart, Service
from holosc.core.render.escape import shell_word, yaml_comment, yaml_document
from holosc.errors import Diagnostic, HolosError
from holosc.export import userdata

# Not .yaml/.yml/.json: `kubectl apply -f DIR` skips it.
LOCK_FILE = "holos-export.lock"
VM_API = "kubevirt.io/v1"
POOL_API = "pool.kubevirt.io/v1alpha1"
CDI_API = "cdi.kubevirt.io/v1beta1"
DEFAULT_DISK = 10 * 1024**3
# compose's restart: → runStrategy, by what docs/units.md measured for each policy: after
# a crash (kill -9) and after a guest power-off.
RUN_STRATEGY = {
    None: "RerunOnFailure",  # on-abnormal: crash → restarted, power-off → stays off
    Restart.ON_FAILURE: "RerunOnFailure",
    Restart.NO: "Once",
    Restart.ALWAYS: "Always",
    Restart.UNLESS_STOPPED: "Always",
}
EXPOSE = ("clusterip", "nodeport")
MANAGER = "holosc"
# Order of the files in an output directory: `kubectl apply -f DIR` reads them sorted.
ORDER = {
    "Namespace": 0,
    "PersistentVolumeClaim": 1,
    "DataVolume": 1,
    "NetworkPolicy": 2,
    "Service": 2,
}
NETWORK_API = "networking.k8s.io/v1"
# The label that makes a VM's pods a member of a holos network (NetworkPolicy selects it).
NETWORK_LABEL = "network.holosc/"
MEMBER = "member"
DNS_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?")
DNS_SUBDOMAIN = re.compile(r"[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?")


class ExportError(HolosError):
    """The project cannot be exported as asked (every reason at once)."""


@dataclasses.dataclass(frozen=True)
class Options:
    namespace: str | None = None  # default: the project name
    storage_class: str | None = None
    expose: str = "clusterip"
    ignore_extra_args: bool = False
    container_disks: Mapping[str, str] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass(frozen=True)
class Manifest:
    body: dict[str, Any]
    comments: tuple[str, ...] = ()

    @property
    def kind(self) -> str:
        return str(self.body["kind"])

    @property
    def name(self) -> str:
        return str(self.body["metadata"]["name"])

    @property
    def file_name(self) -> str:
        return f"{ORDER.get(self.kind, 3)}-{self.kind.lower()}-{self.name}.yaml"

    def text(self) -> str:
        return "".join(yaml_comment(c) + "\n" for c in self.comments) + yaml_document(self.body)


@dataclasses.dataclass(frozen=True)
class Export:
    manifests: tuple[Manifest, ...]
    warnings: tuple[Diagnostic, ...]
    notes: tuple[str, ...]

    def stream(self) -> str:
        """Every manifest as one multi-document YAML stream (for stdout)."""
        return "".join(f"---\n{m.text()}" for m in self.manifests)

    def files(self) -> dict[str, str]:
        return {m.file_name: m.text() for m in self.manifests}

    def output(self) -> Output:
        """The manifests as files, plus the lock file that lets the next export remove
        the manifests this one no longer writes."""
        data = {name: text.encode() for name, text in self.files().items()}
        lock = {
            "exporter": f"holosc {__version__} export kubevirt",
            "files": {name: hashlib.sha256(d).hexdigest() for name, d in sorted(data.items())},
        }
        data[LOCK_FILE] = (json.dumps(lock, indent=2, sort_keys=True) + "\n").encode()
        files = {PurePosixPath(name): File(d) for name, d in sorted(data.items())}
        return Output(MappingProxyType(files))


def ssh_secret_name(project: Project) -> str:
    return f"{project.name}-ssh-key"


def quantity(size: int) -> str:
    """Bytes as a Kubernetes quantity: the largest binary unit that divides them."""
    for unit, factor in (("Ti", 1024**4), ("Gi", 1024**3), ("Mi", 1024**2), ("Ki", 1024)):
        if size % factor == 0:
            return f"{size // factor}{unit}"
    return str(size)


def seconds(ms: int) -> int:
    return max(1, math.ceil(ms / 1000))


class _Exporter:
    def __init__(self, project: Project, options: Options, doc: Document | None) -> None:
        self.project = project
        self.options = options
        self.doc = doc
        self.namespace = options.namespace or project.name
        self.errors: list[Diagnostic] = []
        self.warnings: list[Diagnostic] = []
        self.notes: list[str] = []
        self.service_warnings: dict[str, list[str]] = {}

    def diag(
        self, path: JsonPath, message: str, hint: str | None = None, *, warning: bool = True
    ) -> None:
        severity = "warning" if warning else "error"
        if self.doc is not None:
            d = self.doc.diagnostic(path, message, hint=hint, severity=severity)
        else:
            d = Diagnostic(message, path=format_path(path), hint=hint, severity=severity)
        (self.warnings if warning else self.errors).append(d)
        if warning and path[:1] == ("services",):
            self.service_warnings.setdefault(str(path[1]), []).append(f"{d.path}: {message}")

    def labels(self, name: str, component: str) -> dict[str, str]:
        return {
            "app.kubernetes.io/name": name,
            "app.kubernetes.io/instance": self.project.name,
            "app.kubernetes.io/part-of": self.project.name,
            "app.kubernetes.io/component": component,
            "app.kubernetes.io/managed-by": MANAGER,
        }

    def metadata(self, name: str, owner: str, component: str) -> dict[str, Any]:
        return {"name": name, "namespace": self.namespace, "labels": self.labels(owner, component)}

    def vm_labels(self, service: Service) -> dict[str, str]:
        """A VM's labels: the service's, and one per network it joins (NetworkPolicy)."""
        return self.labels(service.name, "vm") | {
            NETWORK_LABEL + n: MEMBER for n in service.network_names if self.is_mapped(n)
        }

    def is_mapped(self, network: str) -> bool:
        return self.project.network(network).external is None

    def selector(self, service: Service) -> dict[str, str]:
        labels = self.labels(service.name, "vm")
        return {k: labels[k] for k in ("app.kubernetes.io/instance", "app.kubernetes.io/name")}

    # -- the whole project -----------------------------------------------------------

    def run(self) -> Export:
        self.check_options()
        manifests = [self.namespace_manifest()]
        manifests += [
            self.volume(v.name, v.size)
            for v in self.project.volumes
            if v.name in self.project.used_volumes
        ]
        for service in self.project.services:
            manifests += self.service_manifests(service)
        manifests += self.network_policies()
        self.check_names(manifests)
        if self.errors:
            raise ExportError("cannot export to KubeVirt", [*self.errors, *self.warnings])
        ordered = sorted(manifests, key=lambda m: m.file_name)
        return Export(tuple(ordered), tuple(self.warnings), tuple(self.notes))

    def check_options(self) -> None:
        o = self.options
        if o.namespace is not None and not DNS_LABEL.fullmatch(o.namespace):
            self.errors.append(_usage(f"--namespace {o.namespace!r} is not a DNS label"))
        if o.storage_class is not None and not DNS_SUBDOMAIN.fullmatch(o.storage_class):
            self.errors.append(
                _usage(f"--storage-class {o.storage_class!r} is not a DNS subdomain name")
            )
        if o.expose not in EXPOSE:
            self.errors.append(_usage(f"--expose {o.expose!r}: expected one of {EXPOSE}"))
        names = {s.name for s in self.project.services}
        for name in sorted(set(o.container_disks) - names):
            self.errors.append(_usage(f"--container-disk {name}=...: no service {name!r}"))

    def check_names(self, manifests: list[Manifest]) -> None:
        seen: set[tuple[str, str]] = set()
        for m in manifests:
            if (m.kind, m.name) in seen:
                self.errors.append(
                    _usage(
                        f"two manifests would be {m.kind} {m.name}",
                        "rename a service or volume: `<svc>-ports` names the ports of <svc>",
                    )
                )
            seen.add((m.kind, m.name))

    def namespace_manifest(self) -> Manifest:
        body = {
            "apiVersion": "v1",
            "kind": "Namespace",
            "metadata": {
                "name": self.namespace,
                "labels": self.labels(self.project.name, "namespace"),
            },
        }
        return Manifest(body, (f"holos project {self.project.name}",))

    def storage(self, size: int) -> dict[str, Any]:
        spec: dict[str, Any] = {"resources": {"requests": {"storage": quantity(size)}}}
        if self.options.storage_class:
            spec["storageClassName"] = self.options.storage_class
        return spec

    def volume(self, name: str, size: int) -> Manifest:
        users = [(s, m) for s in self.project.services for m in s.named_volumes if m.source == name]
        instances = sum(s.replicas for s, _ in users)
        # holosc allows one writer and no other user, or only readers (validate.py).
        mode = "ReadWriteOnce" if instances == 1 else "ReadOnlyMany"
        body = {
            "apiVersion": "v1",
            "kind": "PersistentVolumeClaim",
            "metadata": self.metadata(name, name, "volume"),
            "spec": {"accessModes": [mode], **self.storage(size)},
        }
        return Manifest(
            body,
            (
                f"holos volume {name}: a blank disk the guest formats (ext4) on first use",
                "used by " + ", ".join(f"{s.name}:{m.target}" for s, m in users),
            ),
        )

    # -- one service -----------------------------------------------------------------

    def service_manifests(self, service: Service) -> list[Manifest]:
        at: JsonPath = ("services", service.name)
        comments: list[str] = []
        self.unmapped(service, at)
        extra: list[Manifest] = []
        disk, templates = self.root_disk(service, at, comments, extra)
        vmi = self.vmi_spec(service, disk, comments)
        vm_spec: dict[str, Any] = {"runStrategy": RUN_STRATEGY[service.restart]}
        if templates:
            vm_spec["dataVolumeTemplates"] = templates
        vm_spec["template"] = {
            "metadata": {"labels": self.vm_labels(service)},
            "spec": vmi,
        }
        comments += self.dependency_comments(service)
        comments += [f"warning: {w}" for w in self.service_warnings.get(service.name, [])]
        if service.replicas == 1:
            name = layout.instance_name(service.name, 0)
            body: dict[str, Any] = {
                "apiVersion": VM_API,
                "kind": "VirtualMachine",
                "metadata": self.metadata(name, service.name, "vm"),
                "spec": vm_spec,
            }
            head = f"holos service {service.name}: VirtualMachine {name}"
        else:
            body = {
                "apiVersion": POOL_API,
                "kind": "VirtualMachinePool",
                "metadata": self.metadata(service.name, service.name, "vm"),
                "spec": {
                    "replicas": service.replicas,
                    "selector": {"matchLabels": self.selector(service)},
                    "virtualMachineTemplate": {
                        "metadata": {"labels": self.vm_labels(service)},
                        "spec": vm_spec,
                    },
                },
            }
            names = ", ".join(
                layout.instance_name(service.name, i) for i in range(service.replicas)
            )
            head = (
                f"holos service {service.name}: {service.replicas} replicas, "
                f"VirtualMachinePool {service.name} (VMs {names})"
            )
        out = [Manifest(body, (head, *comments)), self.dns_service(service), *extra]
        out += self.alias_services(service)
        if service.ports:
            out.append(self.ports_service(service))
        return out

    # -- networks ------------------------------------------------------------------------

    def network_policies(self) -> list[Manifest]:
        """One NetworkPolicy per network: its members accept traffic from its members (a
        pod on two networks from both: Kubernetes unites the policies that select it);
        published ports from anywhere; and no egress but to their networks and DNS for
        the services whose networks are all internal."""
        instance = {"app.kubernetes.io/instance": self.project.name}
        out = []
        for network in self.project.networks:
            if network.external is not None:
                continue
            members = {"matchLabels": {**instance, NETWORK_LABEL + network.name: MEMBER}}
            body = {
                "apiVersion": NETWORK_API,
                "kind": "NetworkPolicy",
                "metadata": self.metadata(f"network-{network.name}", self.project.name, "network"),
                "spec": {
                    "podSelector": members,
                    "policyTypes": ["Ingress"],
                    "ingress": [{"from": [{"podSelector": members}]}],
                },
            }
            users = [s.name for s in self.project.services if network.name in s.network_names]
            out.append(
                Manifest(
                    body,
                    (
                        f"holos network {network.name}: its members ({', '.join(users)}) accept "
                        "what its members send; the pod network carries it",
                    ),
                )
            )
        for service in self.project.services:
            if service.ports:
                out.append(self.ports_policy(service))
            networks = [self.project.network(n) for n in service.network_names]
            if not networks:
                out.append(self.isolated_policy(service))
            elif all(n.internal for n in networks):
                out.append(self.internal_policy(service))
        return out

    def isolated_policy(self, service: Service) -> Manifest:
        """A service on no network (`networks: []`) admits nothing but its published
        ports: no network policy selects its pods, and an unselected pod admits all."""
        body = {
            "apiVersion": NETWORK_API,
            "kind": "NetworkPolicy",
            "metadata": self.metadata(f"{service.name}-isolated", service.name, "network"),
            "spec": {
                "podSelector": {"matchLabels": self.selector(service)},
                "policyTypes": ["Ingress"],  # and no ingress rule: nothing is admitted
            },
        }
        return Manifest(
            body,
            (
                f"holos service {service.name} is on no network: it admits nothing"
                + (f" but its published ports ({service.name}-ports)" if service.ports else ""),
            ),
        )

    def ports_policy(self, service: Service) -> Manifest:
        body = {
            "apiVersion": NETWORK_API,
            "kind": "NetworkPolicy",
            "metadata": self.metadata(f"{service.name}-ports", service.name, "ports"),
            "spec": {
                "podSelector": {"matchLabels": self.selector(service)},
                "policyTypes": ["Ingress"],
                "ingress": [
                    {"ports": [{"protocol": "TCP", "port": p.guest} for p in service.ports]}
                ],
            },
        }
        return Manifest(
            body, (f"published ports of holos service {service.name}: open to every client",)
        )

    def internal_policy(self, service: Service) -> Manifest:
        instance = {"app.kubernetes.io/instance": self.project.name}
        peers = [
            {"podSelector": {"matchLabels": {**instance, NETWORK_LABEL + n: MEMBER}}}
            for n in service.network_names
        ]
        dns = [{"protocol": p, "port": 53} for p in ("UDP", "TCP")]
        body = {
            "apiVersion": NETWORK_API,
            "kind": "NetworkPolicy",
            "metadata": self.metadata(f"{service.name}-internal", service.name, "network"),
            "spec": {
                "podSelector": {"matchLabels": self.selector(service)},
                "policyTypes": ["Egress"],
                "egress": [{"to": peers}, {"to": [{"namespaceSelector": {}}], "ports": dns}],
            },
        }
        return Manifest(
            body,
            (
                f"holos service {service.name} is only on internal networks: no egress but "
                "to their members and the cluster's DNS",
            ),
        )

    def alias_services(self, service: Service) -> list[Manifest]:
        """A headless Service per network alias: the cluster's DNS names are the
        namespace's, not one network's."""
        out = []
        for attachment in service.networks:
            for alias in attachment.aliases:
                if not DNS_LABEL.fullmatch(alias):
                    continue  # unmapped() warned
                body = {
                    "apiVersion": "v1",
                    "kind": "Service",
                    "metadata": self.metadata(alias, service.name, "dns"),
                    "spec": {
                        "clusterIP": "None",
                        "selector": self.selector(service),
                        "publishNotReadyAddresses": False,
                    },
                }
                out.append(
                    Manifest(
                        body,
                        (
                            f"alias {alias} of holos service {service.name} on network "
                            f"{attachment.network}: resolves in the whole namespace",
                        ),
                    )
                )
        return out

    def unmapped(self, service: Service, at: JsonPath) -> None:
        vm = service.vm
        if vm.extra_args:
            self.diag(
                (*at, "vm", "extra_args"),
                "extra_args are QEMU options; KubeVirt has no place for them",
                "drop them, or export with --ignore-extra-args to leave them out",
                warning=self.options.ignore_extra_args,
            )
        if vm.kernel or vm.initrd or vm.cmdline:
            self.diag(
                (*at, "vm", "kernel" if vm.kernel else "cmdline"),
                "direct kernel boot is not exported: the VM boots from its disk",
                "on a cluster the kernel and initrd come from a container image "
                "(spec.domain.firmware.kernelBoot)",
            )
        model, *features = vm.cpu_model.split(",")
        if model == "max":
            self.diag(
                (*at, "vm", "cpu_model"),
                "cpu_model max has no KubeVirt equivalent; "
                "the cluster default (host-model) applies",
            )
        for feature in features:
            if _cpu_feature(feature) is None:
                self.diag(
                    (*at, "vm", "cpu_model"),
                    f"CPU property {feature} is a QEMU option; KubeVirt takes CPU flags only "
                    "(+flag, -flag, flag=on|off): not exported",
                    warning=True,
                )
        for i, mount in enumerate(service.mounts):
            if mount in service.binds:
                self.diag(
                    (*at, "volumes", i),
                    f"bind mount {mount.source}:{mount.target} has no meaning on a cluster; "
                    "not exported (its mount line is left out of cloud-init)",
                    "use a named volume, or cloud_init.write_files for a few files",
                )
        for i, use in enumerate(service.secrets):
            self.diag(
                (*at, "secrets", i),
                f"secret {use.source} ({use.target}) is not exported: holosc hands secrets "
                "to a guest through QEMU on the host",
                "create a Kubernetes Secret and add it to the VM as a `secret` volume "
                "(KubeVirt shows it as a disk to mount)",
            )
        self.unmapped_networks(service, at)
        for i, device in enumerate(service.devices):
            resource = device_resource(device.pci)
            self.diag(
                (*at, "devices", i),
                f"PCI device {device.pci} becomes hostDevice {resource}: the cluster admin "
                "must list its vendor:device ID under permittedHostDevices with that "
                "resourceName, and the VM gets any such device of a node, not this address",
                "`lspci -nn -s " + device.pci + "` shows the vendor:device ID",
            )
            if device.rom_file:
                self.diag(
                    (*at, "devices", i, "rom_file"),
                    "rom_file is not exported: KubeVirt host devices take no ROM file",
                )

    def unmapped_networks(self, service: Service, at: JsonPath) -> None:
        raw = self.doc.data["services"][service.name].get("networks") if self.doc else None
        for attachment in service.networks:
            name = attachment.network
            index = raw.index(name) if isinstance(raw, list) and name in raw else name
            where = (*at, "networks", index)
            network = self.project.network(name)
            if network.external is not None:
                self.diag(
                    where,
                    f"network {network.name} is the host bridge {network.external}: a cluster "
                    "has no such bridge",
                    "attach the VM to a LAN on the cluster with Multus (a "
                    "NetworkAttachmentDefinition) by hand, or leave the network out",
                    warning=False,
                )
            if attachment.ipv4_address is not None:
                self.diag(
                    (*where, "ipv4_address"),
                    f"ipv4_address {attachment.ipv4_address} is not exported: pod addresses "
                    "come from the cluster",
                    "reach the service by its name",
                )
            for alias in attachment.aliases:
                if not DNS_LABEL.fullmatch(alias):
                    self.diag(
                        (*where, "aliases"),
                        f"alias {alias} is not exported: a Service name is a DNS label",
                    )
        for i, (name, address) in enumerate(service.extra_hosts):
            if address == HOST_GATEWAY:
                self.diag(
                    (*at, "extra_hosts", i),
                    f"extra_hosts {name}:host-gateway cannot be exported: a cluster has no "
                    "host gateway (the VM runs on any node, and a KubeVirt VM takes no "
                    "hostAliases: the pod's /etc/hosts is not the guest's)",
                    f"give {name} the address of what it should reach ({name}:IP, written "
                    "to the guest's /etc/hosts), or a Service of the cluster and its name",
                    warning=False,
                )

    def root_disk(
        self, service: Service, at: JsonPath, comments: list[str], extra: list[Manifest]
    ) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        """The `root` volume of the VMI and the dataVolumeTemplates it needs."""
        image = service.image
        size = service.vm.disk_size or DEFAULT_DISK
        disk_name = (
            f"{service.name}-root"
            if service.replicas > 1
            else (f"{layout.instance_name(service.name, 0)}-root")
        )
        container = self.options.container_disks.get(service.name)
        if container is not None:
            comments.append(f"image: containerDisk {container} (ephemeral: reset on every start)")
            return {"name": "root", "containerDisk": {"image": container}}, []
        if image.is_registry:
            entry = images.lookup(image.ref)
            assert entry is not None  # validate resolved it
            source: dict[str, Any] = {"http": {"url": entry.url}}
            comments += [
                f"image {entry.ref}: CDI imports {entry.url}",
                f"checksums ({entry.algorithm}) are published at {entry.checksum_url}; "
                "CDI's DataVolume API has no field to verify them",
            ]
        else:
            upload = f"{service.name}-image"
            extra.append(self.upload_volume(service, upload, size))
            source = {"pvc": {"namespace": self.namespace, "name": upload}}
            comments.append(f"image {image.path}: cloned from DataVolume {upload} (uploaded)")
            self.notes.append(
                f"upload the image of {service.name}: {upload_command(self, service)}"
            )
        template = {
            "metadata": {"name": disk_name, "labels": self.labels(service.name, "disk")},
            "spec": {"source": source, "storage": self.storage(size)},
        }
        return {"name": "root", "dataVolume": {"name": disk_name}}, [template]

    def upload_volume(self, service: Service, name: str, size: int) -> Manifest:
        body = {
            "apiVersion": CDI_API,
            "kind": "DataVolume",
            "metadata": {
                **self.metadata(name, service.name, "image"),
                # An upload needs its PVC bound before any VM consumes it.
                "annotations": {"cdi.kubevirt.io/storage.bind.immediate.requested": "true"},
            },
            "spec": {"source": {"upload": {}}, "storage": self.storage(size)},
        }
        return Manifest(
            body,
            (
                f"local image {service.image.path} of {service.name}: upload it once, from the "
                "directory of holos.yaml, with",
                upload_command(self, service),
            ),
        )

    def vmi_spec(
        self, service: Service, root: dict[str, Any], comments: list[str]
    ) -> dict[str, Any]:
        domain = _domain(service)
        disks: list[dict[str, Any]] = [
            {"name": "root", "bootOrder": 1, "disk": {"bus": "virtio"}},
            {"name": "cloudinit", "disk": {"bus": "virtio"}},
        ]
        volumes: list[dict[str, Any]] = [
            root,
            {
                "name": "cloudinit",
                "cloudInitNoCloud": {"userData": userdata.user_data(self.project, service)},
            },
        ]
        for mount in service.named_volumes:
            disks.append(volume_disk(mount))
            claim: dict[str, Any] = {"claimName": mount.source}
            if mount.read_only:
                claim["readOnly"] = True
            volumes.append({"name": f"vol-{mount.source}", "persistentVolumeClaim": claim})
        devices: dict[str, Any] = {
            "disks": disks,
            "interfaces": [{"name": "default", "masquerade": {}}],
        }
        if not service.vm.free_page_reporting and not service.devices:
            # KubeVirt attaches a balloon (with free page reporting) unless told not to.
            devices["autoattachMemBalloon"] = False
            comments.append("free_page_reporting: false: no memory balloon")
        if service.vm.ksm:
            comments.append(
                "ksm: KubeVirt merges pages per node (KubeVirt CR "
                "spec.configuration.ksmConfiguration), not per VM"
            )
        if service.devices:
            devices["hostDevices"] = [
                {"name": f"pci{i}", "deviceName": device_resource(d.pci)}
                for i, d in enumerate(service.devices)
            ]
        domain["devices"] = devices
        spec: dict[str, Any] = {
            "domain": domain,
            "networks": [{"name": "default", "pod": {}}],
            "subdomain": service.name,
            "terminationGracePeriodSeconds": seconds(service.stop_grace_ms),
            "accessCredentials": [
                {
                    "sshPublicKey": {
                        "source": {"secret": {"secretName": ssh_secret_name(self.project)}},
                        "propagationMethod": {
                            "qemuGuestAgent": {"users": [service.cloud_init.user]}
                        },
                    }
                }
            ],
        }
        if service.healthcheck is not None:
            spec["readinessProbe"] = _readiness_probe(service, comments)
        spec["volumes"] = volumes
        return spec

    def dependency_comments(self, service: Service) -> list[str]:
        if not service.depends_on:
            return []
        out = ["depends_on (Kubernetes has no start order):"]
        for dep in service.depends_on:
            target = self.project.service(dep.service)
            gate = "healthy" if P.waits_for_health(target, dep.condition) else "started"
            ready = (
                "passes its readinessProbe"
                if target.healthcheck is not None
                else "runs (it has no healthcheck)"
            )
            out.append(
                f"  {dep.service} (holos waits until {gate}): kept as a first-boot wait in "
                f"cloud-init until `{dep.service}` resolves, i.e. an instance {ready}"
            )
        out.append(
            "  not kept: the order on later starts, and restarts of a dependency "
            "restarting its dependents"
        )
        return out

    def dns_service(self, service: Service) -> Manifest:
        body = {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": self.metadata(service.name, service.name, "dns"),
            "spec": {
                "clusterIP": "None",
                "selector": self.selector(service),
                "publishNotReadyAddresses": False,
            },
        }
        return Manifest(
            body,
            (
                f"DNS of holos service {service.name}: `{service.name}` resolves to its ready "
                f"instances, `{service.name}-<i>.{service.name}` to instance i (every port)",
            ),
        )

    def ports_service(self, service: Service) -> Manifest:
        nodeport = self.options.expose == "nodeport"
        ports = [
            {
                "name": f"tcp-{p.guest}",
                "protocol": "TCP",
                "port": p.host if p.host is not None else p.guest,
                "targetPort": p.guest,
            }
            for p in service.ports
        ]
        body = {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": self.metadata(f"{service.name}-ports", service.name, "ports"),
            "spec": {
                "type": "NodePort" if nodeport else "ClusterIP",
                "selector": self.selector(service),
                "ports": ports,
            },
        }
        where = (
            "on every node at a port Kubernetes picks (see `kubectl get svc`)"
            if nodeport
            else "inside the cluster (kubectl port-forward for outside)"
        )
        return Manifest(
            body,
            (
                f"published ports of holos service {service.name}, {where}; one port for all "
                "replicas, balanced (holos gives replica i HOST+i)",
            ),
        )


def volume_disk(mount: Mount) -> dict[str, Any]:
    """The disk of a named volume: serial vol-<name> keeps /dev/disk/by-id/virtio-vol-<name>,
    so the mount line of `build`'s cloud-init finds it unchanged."""
    disk: dict[str, Any] = {"bus": "virtio"}
    if mount.read_only:
        disk["readonly"] = True
    return {"name": f"vol-{mount.source}", "serial": f"vol-{mount.source}", "disk": disk}


def upload_command(exporter: _Exporter, service: Service) -> str:
    q = shell_word
    return (
        f"virtctl image-upload dv {service.name}-image -n {exporter.namespace} --no-create "
        f"--image-path={q(service.image.path or '')}"
    )


def ssh_secret_command(project: Project, namespace: str | None, public_key: str) -> str:
    """How to create the Secret the VMs read the project's SSH public key from."""
    q = shell_word
    return (
        f"kubectl -n {namespace or project.name} create secret generic "
        f"{ssh_secret_name(project)} --from-file=key={q(public_key)}"
    )


def device_resource(pci: str) -> str:
    return "holosc/pci-" + re.sub(r"[:.]", "-", pci)


def _usage(message: str, hint: str | None = None) -> Diagnostic:
    return Diagnostic(message, file="holosc export kubevirt", hint=hint)


def export_project(project: Project, options: Options, doc: Document | None = None) -> Export:
    """Every manifest of `project` on KubeVirt.

    :raises ExportError: with every reason the project cannot be exported as asked.
    """
    return _Exporter(project, options, doc).run()


def _cpu_feature(feature: str) -> dict[str, str] | None:
    """A QEMU -cpu flag as KubeVirt's cpu.features entry; None for other properties."""
    name, _, value = feature.lstrip("+-").partition("=")
    on = {"": not feature.startswith("-"), "on": True, "off": False}.get(value)
    if on is None:
        return None
    return {"name": name, "policy": "require" if on else "disable"}


def _domain(service: Service) -> dict[str, Any]:
    """A VMI's domain: CPU, memory, machine and firmware (devices are added by vmi_spec)."""
    vm = service.vm
    cpu: dict[str, Any] = {"cores": vm.vcpu}
    model, *features = vm.cpu_model.split(",")  # QEMU's -cpu MODEL,FEATURE...
    if model == "host":
        cpu["model"] = "host-passthrough"
    elif model != "max":
        cpu["model"] = model
    flags = [flag for flag in map(_cpu_feature, features) if flag is not None]
    if flags:
        cpu["features"] = flags
    domain: dict[str, Any] = {
        "cpu": cpu,
        "memory": {"guest": f"{vm.memory_mb}Mi"},
        "machine": {"type": vm.machine},
    }
    if vm.uefi or service.devices:
        domain["firmware"] = {"bootloader": {"efi": {"secureBoot": False}}}
    return domain


def _readiness_probe(service: Service, comments: list[str]) -> dict[str, Any]:
    """The compose healthcheck as a readinessProbe run by qemu-guest-agent."""
    hc = service.healthcheck
    assert hc is not None
    comments.append(
        "healthcheck: readinessProbe run by qemu-guest-agent in the guest; "
        "the service's DNS name lists an instance only while it passes"
    )
    if service.environment:
        comments.append("  the probe does not see environment: (build's runs over SSH, which does)")
    return {
        "exec": {"command": list(hc.test)},
        "initialDelaySeconds": hc.start_period_ms // 1000,
        "periodSeconds": seconds(hc.interval_ms),
        "timeoutSeconds": seconds(hc.timeout_ms),
        "failureThreshold": hc.retries,
    }
