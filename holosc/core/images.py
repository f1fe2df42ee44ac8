"""The image registry: names and tags people write in `image:`, and their cache files.

Resolving a reference never touches the network or the disk; `holosc pull` downloads
into the cache file named here, which the compiled launch scripts read.
"""

from __future__ import annotations

import dataclasses

from holosc.core.model import Image, OsFamily


@dataclasses.dataclass(frozen=True, slots=True)
class RegistryImage:
    name: str
    tag: str
    url: str
    checksum_url: str
    algorithm: str
    user: str
    os: OsFamily
    default: bool = False
    format: str = "qcow2"

    @property
    def ref(self) -> str:
        return f"{self.name}:{self.tag}"


_UBUNTU = "https://cloud-images.ubuntu.com"
_DEBIAN = "https://cloud.debian.org/images/cloud/bookworm/latest"
_FEDORA = "https://download.fedoraproject.org/pub/fedora/linux/releases/43/Cloud/x86_64/images"
_ARCH = "https://geo.mirror.pkgbuild.com/images/latest"
_ALPINE = "https://dl-cdn.alpinelinux.org/alpine/v3.21/releases/cloud"
_SYSTEMD, _OPENRC = OsFamily.SYSTEMD, OsFamily.OPENRC


def _ubuntu(tag: str, series: str, default: bool = False) -> RegistryImage:
    return RegistryImage(
        "ubuntu",
        tag,
        f"{_UBUNTU}/{series}/current/{series}-server-cloudimg-amd64.img",
        f"{_UBUNTU}/{series}/current/SHA256SUMS",
        "sha256",
        "ubuntu",
        _SYSTEMD,
        default,
    )


REGISTRY: tuple[RegistryImage, ...] = (
    RegistryImage(
        "alpine",
        "3.21",
        f"{_ALPINE}/nocloud_alpine-3.21.6-x86_64-bios-tiny-r0.qcow2",
        f"{_ALPINE}/nocloud_alpine-3.21.6-x86_64-bios-tiny-r0.qcow2.sha512",
        "sha512",
        "alpine",
        _OPENRC,
        default=True,
    ),
    RegistryImage(
        "arch",
        "latest",
        f"{_ARCH}/Arch-Linux-x86_64-cloudimg.qcow2",
        f"{_ARCH}/Arch-Linux-x86_64-cloudimg.qcow2.SHA256",
        "sha256",
        "arch",
        _SYSTEMD,
        default=True,
    ),
    RegistryImage(
        "debian",
        "12",
        f"{_DEBIAN}/debian-12-generic-amd64.qcow2",
        f"{_DEBIAN}/SHA512SUMS",
        "sha512",
        "debian",
        _SYSTEMD,
        default=True,
    ),
    RegistryImage(
        "debian",
        "bookworm",
        f"{_DEBIAN}/debian-12-generic-amd64.qcow2",
        f"{_DEBIAN}/SHA512SUMS",
        "sha512",
        "debian",
        _SYSTEMD,
    ),
    RegistryImage(
        "fedora",
        "43",
        f"{_FEDORA}/Fedora-Cloud-Base-Generic-43-1.6.x86_64.qcow2",
        f"{_FEDORA}/Fedora-Cloud-43-1.6-x86_64-CHECKSUM",
        "sha256",
        "fedora",
        _SYSTEMD,
        default=True,
    ),
    _ubuntu("noble", "noble", default=True),
    _ubuntu("24.04", "noble"),
    _ubuntu("jammy", "jammy"),
    _ubuntu("22.04", "jammy"),
)

LOCAL_SUFFIXES = (".qcow2", ".raw", ".img")


def is_local_ref(ref: str) -> bool:
    """A path (`/x`, `./x`, `../x`, `dir/x`, or `x.qcow2`) rather than a registry name."""
    return (
        ref.startswith(("/", "./", "../"))
        or "/" in ref
        or (":" not in ref and ref.endswith(LOCAL_SUFFIXES))
    )


def lookup(ref: str) -> RegistryImage | None:
    """The registry entry for `name` or `name:tag`, or None."""
    name, _, tag = ref.partition(":")
    for entry in REGISTRY:
        if entry.name == name and (entry.tag == tag or (not tag and entry.default)):
            return entry
    return None


def known_refs() -> list[str]:
    return [entry.ref for entry in REGISTRY]


def infer_format(path: str) -> str:
    """raw for `.raw`, qcow2 otherwise (Ubuntu's `.img` cloud images are qcow2)."""
    return "raw" if path.endswith(".raw") else "qcow2"


def resolve(ref: str, image_format: str | None, image_os: str | None) -> Image:
    """An Image for `ref`; raises KeyError for an unknown registry name or tag."""
    if is_local_ref(ref):
        return Image(
            format=image_format or infer_format(ref),
            os=OsFamily(image_os or "systemd"),
            path=ref,
        )
    entry = lookup(ref)
    if entry is None:
        raise KeyError(ref)
    # The cache holds the registry's format; image_format is for local files only.
    return Image(
        format=entry.format,
        os=OsFamily(image_os or entry.os),
        default_user=entry.user,
        name=entry.name,
        tag=entry.tag,
    )
