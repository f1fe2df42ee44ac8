"""The one pass that turns a loaded Document into a Project.

The JSON Schema (schema.py) checks shapes; the semantic checks check meaning: each service's
fields (service.py: durations, sizes, mounts, Dockerfiles, ...) and what spans services
(cross.py: names that refer to each other, port clashes, dependency cycles). Every error is
collected; `build_project` raises one ValidationError that carries all of them, sorted by
position.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from holosc.core import quantities
from holosc.core.document import Document
from holosc.core.files import Files
from holosc.core.model import (
    Project,
    Volume,
)
from holosc.core.validate import cross, hostfiles, networks, schema, service
from holosc.core.validate.checker import (
    NAME,
    Checker,
)
from holosc.errors import Diagnostic, ValidationError


@dataclasses.dataclass(frozen=True)
class Result:
    project: Project
    warnings: tuple[Diagnostic, ...]


def build_project(
    doc: Document,
    files: Files,
    *,
    profiles: Iterable[str] = (),
) -> Result:
    """Validate `doc`, reading the files it names through `files`, and build the frozen
    Project of the services that run with the active `profiles` (services without
    profiles always run; replicas: 0 never does; `*` activates every profile).

    :raises ValidationError: with every error found.
    """
    check = Checker(doc)
    check.errors += schema.check(doc)
    data = doc.data if isinstance(doc.data, dict) else {}
    name = _project_name(check, data, doc.directory)
    volumes = _volumes(check, data.get("volumes"))
    declared = networks.top_level(check, data.get("networks"))
    secrets = service.top_level_secrets(data.get("secrets"))
    raw_services: dict[str, Any] = (
        data["services"] if isinstance(data.get("services"), dict) else {}
    )
    services = [
        service.build_service(check, svc_name, raw, volumes, files, secrets)
        for svc_name, raw in raw_services.items()
        if isinstance(raw, dict) and NAME.fullmatch(svc_name)
    ]
    active = tuple(sorted(_all_profiles(raw_services) if "*" in profiles else set(profiles)))
    services, absent = cross.select(services, raw_services, active)
    services = cross.drop_optional_dependencies(check, services, absent)
    ordered = cross.order(check, services)
    cross.check_cross_service(check, ordered, volumes, name)
    joined = networks.check_project(check, ordered, declared)
    hostfiles.check_needed_files(check, ordered, raw_services, secrets, files)
    if check.errors:
        raise ValidationError(f"{len(check.errors)} error(s) in {doc.file}", check.errors)
    used = {u.source for s in ordered for u in s.secrets}
    project = Project(
        name,
        tuple(ordered),
        tuple(volumes.values()),
        active,
        tuple(s for n, s in sorted(secrets.items()) if n in used),
        joined,
    )
    cross.check_output_size(check, project)
    if check.errors:
        raise ValidationError(f"{len(check.errors)} error(s) in {doc.file}", check.errors)
    return Result(project, tuple(sorted(check.warnings, key=Diagnostic.sort_key)))


def _all_profiles(raw_services: dict[str, Any]) -> set[str]:
    """`*`: every profile a service names, as compose's `--profile '*'`."""
    return {
        str(p)
        for raw in raw_services.values()
        if isinstance(raw, dict) and isinstance(raw.get("profiles"), list)
        for p in raw["profiles"]
    }


def _project_name(check: Checker, data: dict[str, Any], directory: Path) -> str:
    if isinstance(data.get("name"), str):
        return str(data["name"])  # the schema reports a bad explicit name
    # Like compose, derive it from the directory, normalised.
    derived = re.sub(r"[^a-z0-9-]+", "-", directory.name.lower()).strip("-")[:63].strip("-")
    if not NAME.fullmatch(derived):
        check.error(
            ("name",),
            f"cannot derive a project name from directory '{directory.name}'",
            "set name: in holos.yaml",
        )
    return derived


def _volumes(check: Checker, raw: Any) -> dict[str, Volume]:
    result: dict[str, Volume] = {}
    if not isinstance(raw, dict):
        return result
    for name, spec in raw.items():
        size_value = spec.get("size") if isinstance(spec, dict) else None
        size = 10 * 1024**3
        if isinstance(size_value, str | int):
            size = check.parse(("volumes", name, "size"), quantities.parse_size, size_value, size)
        result[name] = Volume(name, size)
    return result
