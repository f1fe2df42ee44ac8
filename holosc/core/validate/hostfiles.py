"""The host files a project's units read when an instance starts, checked alike.

A local `image`, `vm.kernel` and `vm.initrd`, `devices[].rom_file`, bind-mount sources
and top-level `secrets.*.file` are opened by the launch script or QEMU at each start,
not compiled in. One that is missing is a warning for `validate` and `build` (the
output may be meant for another host, or the file made later), marked `missing_file` so
that `holosc up`, on the host that starts the VMs, refuses before starting anything. One
of the wrong kind (a directory where a file belongs) is an error everywhere.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from holosc.core.document import JsonPath
from holosc.core.files import Files
from holosc.core.model import MountKind, Secret, Service
from holosc.core.validate.checker import Checker

HINT = "the VM cannot start until it does: holosc up refuses to start the project"


def check_needed_files(
    check: Checker,
    services: Sequence[Service],
    raw_services: dict[str, Any],
    secrets: dict[str, Secret],
    files: Files,
) -> None:
    """Every file the units of the running `services` will read, at its position."""
    seen_secrets: set[str] = set()
    for svc in services:
        raw = raw_services.get(svc.name, {})
        for where, path, what, kind in _needed(svc, raw):
            _check(check, files, where, path, what, kind)
        for use in svc.secrets:
            secret = secrets.get(use.source)
            if secret and secret.file is not None and secret.name not in seen_secrets:
                seen_secrets.add(secret.name)
                where = ("secrets", secret.name, "file")
                _check(check, files, where, secret.file, f"secret {secret.name}'s file", "file")


def _needed(svc: Service, raw: dict[str, Any]) -> Iterable[tuple[JsonPath, str, str, str]]:
    """(position, path as written, what it is, the kind it must be)."""
    at: JsonPath = ("services", svc.name)
    if svc.image.path is not None and svc.build is None:
        yield (*at, "image"), svc.image.path, "image", "file"
    for key in ("kernel", "initrd"):
        value = getattr(svc.vm, key)
        if value:
            yield (*at, "vm", key), value, f"vm.{key}", "file"
    for i, device in enumerate(svc.devices):
        if device.rom_file:
            yield (*at, "devices", i, "rom_file"), device.rom_file, "rom_file", "file"
    binds = {m.source for m in svc.mounts if m.kind is MountKind.BIND}
    volumes = raw.get("volumes")
    for i, spec in enumerate(volumes if isinstance(volumes, list) else []):
        source = spec.split(":", 1)[0] if isinstance(spec, str) else None
        if source in binds:
            binds.discard(source)
            yield (*at, "volumes", i), source, "bind-mount source", "dir"


def _check(check: Checker, files: Files, where: JsonPath, path: str, what: str, kind: str) -> None:
    found = files.kind(check.doc.directory / path)
    if found == "missing":
        check.missing_file(where, f"{what} '{path}' does not exist (yet)", HINT)
    elif kind == "dir" and found != "dir":
        check.error(where, f"{what} '{path}' is not a directory")
    elif kind == "file" and found == "dir":  # a block device may serve as an image
        check.error(where, f"{what} '{path}' is a directory, not a file")
