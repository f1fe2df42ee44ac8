"""Install compiled output where a systemd manager runs it, and take it away again.

Units go to the manager's unit directory; each project's scripts and seeds go to
`%E/holos/<project>/` with a `project` link to the directory of holos.yaml (relative
paths in holos.yaml resolve through it). `installed.json` there records what was
installed, so a later install knows what changed and what to remove.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import shutil
from pathlib import Path, PurePosixPath

from holosc.core import images, jsontext, layout, names
from holosc.core.compiler import Output
from holosc.core.lock import LOCK_FILE, Lock
from holosc.emit import safedir
from holosc.emit.write import write_atomic
from holosc.host import diskspace, helpers
from holosc.host.systemd import BOOT_TARGET, Manager

MANIFEST = "installed.json"


@dataclasses.dataclass(frozen=True)
class Installed:
    """What one install changed. Names are unit file names and instance names."""

    written_units: frozenset[str]
    removed_units: frozenset[str]
    changed_instances: frozenset[str]
    removed_instances: frozenset[str]
    # Networks whose <p>/hosts.<network> replaced one that guests may be running with.
    peers_changed: frozenset[str] = frozenset()
    # The drop-in naming this host's helper directory was written or removed.
    helpers_changed: bool = False

    @property
    def any(self) -> bool:
        return bool(
            self.helpers_changed
            or self.written_units
            or self.removed_units
            or self.changed_instances
            or self.removed_instances
        )


def _digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def read_manifest(manager: Manager, project: str) -> dict[str, dict[str, str]]:
    """installed.json; every unit and file it names is checked before it becomes a path.

    :raises names.NameError_: when it names a unit or file holosc never installs.
    """
    path = manager.artifacts(project) / MANIFEST
    try:
        data = jsontext.loads(path.read_bytes())
        manifest = {"units": dict(data.get("units", {})), "files": dict(data.get("files", {}))}
    except (OSError, ValueError, TypeError, AttributeError):
        return {"units": {}, "files": {}}
    for unit in manifest["units"]:
        if not (layout.is_unit_of(unit, project) or unit in _image_units(project)):
            raise names.invalid("unit", unit, str(path), f"not a unit of project {project}")
    for rel in manifest["files"]:
        _check_artifact(rel, str(path))
    return manifest


def _image_units(project: str) -> set[str]:
    return {layout.image_unit(project, ref) for ref in images.known_refs()}


def _check_artifact(rel: str, source: str) -> None:
    """An installed file: volumes.sh, hosts, the lock, or <instance>/<seed or launch file>."""
    parts = rel.split("/")
    if len(parts) == 1 and (layout.is_project_file(parts[0]) or parts[0] == LOCK_FILE):
        return
    if len(parts) == 2 and parts[1] in layout.INSTANCE_FILES:
        names.check_instance(parts[0], source)
        return
    raise names.invalid("file", rel, source, "not a file holosc installs")


def installed_projects(manager: Manager) -> list[str]:
    if not manager.config_dir.is_dir():
        return []
    return sorted(
        p.name
        for p in manager.config_dir.iterdir()
        if names.is_label(p.name) and (p / MANIFEST).is_file()
    )


def read_lock(manager: Manager, project: str) -> Lock | None:
    """The installed holos.lock.json, or None when the project is not installed.

    :raises names.NameError_: when the lock names an instance that is not <label>-<index>.
    """
    path = manager.artifacts(project) / LOCK_FILE
    try:
        return Lock.from_json(path.read_bytes(), str(path))
    except (OSError, ValueError):
        return None


def _split(output: Output, project: str) -> tuple[dict[str, bytes], dict[str, tuple[bytes, int]]]:
    units: dict[str, bytes] = {}
    files: dict[str, tuple[bytes, int]] = {}
    for path, file in output.files.items():
        if len(path.parts) == 1 and path.suffix in (".service", ".target", ".timer"):
            units[path.name] = file.data
        elif path.parts[0] == project:
            files[str(PurePosixPath(*path.parts[1:]))] = (file.data, file.mode)
        elif path.name == LOCK_FILE:
            files[LOCK_FILE] = (file.data, file.mode)
    return units, files


def _instance_of(rel: str) -> str | None:
    head = rel.split("/", 1)
    return head[0] if len(head) == 2 else None


def removals(output: Output, manager: Manager, project: str) -> tuple[list[str], list[str]]:
    """(instances, non-template units) that installing `output` would remove, in order.

    Asked before `install`: a removed unit must be stopped while its file still exists,
    or systemd forgets its ExecStop= and kills the VM instead of shutting it down.
    """
    units, files = _split(output, project)
    old = read_manifest(manager, project)
    old_instances = {i for r in old["files"] if (i := _instance_of(r))}
    new_instances = {i for r in files if (i := _instance_of(r))}
    gone_units = [u for u in sorted(set(old["units"]) - set(units)) if "@" not in u]
    return sorted(old_instances - new_instances), gone_units


def install(output: Output, manager: Manager, project: str, project_dir: Path) -> Installed:
    """Write units and artifacts for `project`; remove what a previous install left over.

    :raises RuntimeCommandError: when a filesystem is full (the manifest is written last,
        so the next install rewrites whatever this one could not).
    :raises EmitError: when the unit or configuration directory is another user's or
        writable by others (holosc.emit.safedir).
    """
    try:
        return _install(output, manager, project, project_dir)
    except OSError as exc:
        if not diskspace.is_full(exc):
            raise
        where = Path(exc.filename) if exc.filename else manager.artifacts(project)
        needed = sum(len(f.data) for f in output.files.values())
        raise diskspace.full_error(where, f"project {project}'s units and seeds", needed) from exc


def _write(target: Path, data: bytes, mode: int = 0o644) -> None:
    """write_atomic, with the target named in the error (a failed write() names no file)."""
    try:
        write_atomic(target, data, mode)
    except OSError as exc:
        raise OSError(exc.errno, exc.strerror, str(target)) from exc


def _install(output: Output, manager: Manager, project: str, project_dir: Path) -> Installed:
    # What the manager runs comes from here: no other user may have made or be able to
    # change these directories (they are root's under /etc; HOLOSC_*_DIR may point
    # anywhere).
    for directory in (manager.unit_dir, manager.config_dir):
        safedir.check_dir(directory, create=True)
    units, files = _split(output, project)
    old = read_manifest(manager, project)
    artifacts = manager.artifacts(project)
    written_units = {
        n
        for n, d in units.items()
        if old["units"].get(n) != _digest(d) or not (manager.unit_dir / n).is_file()
    }
    changed_files = {
        r
        for r, (d, _) in files.items()
        if old["files"].get(r) != _digest(d) or not (artifacts / r).is_file()
    }
    for name in sorted(written_units):
        _write(manager.unit_dir / name, units[name])
    for rel in sorted(changed_files):
        data, mode = files[rel]
        _write(artifacts / rel, data, mode)
    removed_units = set(old["units"]) - set(units)
    for name in removed_units:
        (manager.unit_dir / name).unlink(missing_ok=True)
    old_instances = {i for r in old["files"] if (i := _instance_of(r))}
    new_instances = {i for r in files if (i := _instance_of(r))}
    for rel in set(old["files"]) - set(files):
        (artifacts / rel).unlink(missing_ok=True)
    for inst in old_instances - new_instances:
        shutil.rmtree(artifacts / inst, ignore_errors=True)
    link = artifacts / "project"
    if not link.is_symlink() or os.readlink(link) != str(project_dir):
        link.unlink(missing_ok=True)
        link.symlink_to(project_dir)
    manifest = {
        "units": {n: _digest(d) for n, d in sorted(units.items())},
        "files": {r: _digest(d) for r, (d, _) in sorted(files.items())},
    }
    _write(artifacts / MANIFEST, (json.dumps(manifest, indent=2) + "\n").encode())
    helpers_changed = helpers.write_drop_in(manager, project)
    changed = {i for r in changed_files if (i := _instance_of(r))}
    # A changed template changes every replica of its service.
    for name in written_units:
        if svc := layout.template_service(project, name):
            changed |= {i for i in new_instances if layout.split_instance(i)[0] == svc}
    return Installed(
        frozenset(written_units),
        frozenset(removed_units),
        frozenset(changed & old_instances),
        frozenset(old_instances - new_instances),
        frozenset(
            f.removeprefix(layout.PEERS_PREFIX)
            for f in changed_files
            if layout.is_peers_name(f) and f in old["files"]
        ),
        helpers_changed,
    )


def wants_link(manager: Manager, project: str) -> Path:
    return manager.unit_dir / f"{BOOT_TARGET[manager.scope]}.wants" / layout.target_name(project)


def enable(manager: Manager, project: str) -> Path:
    """Start the project at boot: the target joins the scope's boot target."""
    link = wants_link(manager, project)
    link.parent.mkdir(parents=True, exist_ok=True)
    link.unlink(missing_ok=True)
    link.symlink_to(Path("..") / layout.target_name(project))
    return link


def uninstall(manager: Manager, project: str) -> list[Path]:
    """Remove the project's units, boot link and artifacts (never disks). Idempotent."""
    removed = []
    old = read_manifest(manager, project)
    for path in [wants_link(manager, project), *(manager.unit_dir / n for n in old["units"])]:
        if path.is_symlink() or path.exists():
            path.unlink()
            removed.append(path)
    if helpers.remove_drop_in(manager, project):
        removed.append(helpers.drop_in_path(manager, project))
    artifacts = manager.artifacts(project)
    if artifacts.exists():
        shutil.rmtree(artifacts)
        removed.append(artifacts)
    return removed
