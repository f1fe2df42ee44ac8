"""Checks across services: profiles, optional dependencies, start order and cycles, port
and address clashes, and the bound on what the project compiles to."""

from __future__ import annotations

import dataclasses
import difflib
from typing import Any

from holosc.core import compiler, layout
from holosc.core.model import (
    Condition,
    MountKind,
    Project,
    Service,
    Volume,
)
from holosc.core.validate.checker import (
    MAX_INSTANCES,
    PROFILE,
    Checker,
)


def select(
    services: list[Service], raw: dict[str, Any], active: tuple[str, ...]
) -> tuple[list[Service], dict[str, tuple[str, ...]]]:
    """The services that run, and the others with the profiles that would enable them
    (none for a service scaled to zero: dependents go on without it, as in compose)."""
    kept, absent = [], {}
    for service in services:
        listed = raw[service.name].get("profiles")
        names = tuple(
            p
            for p in (listed if isinstance(listed, list) else ())
            if isinstance(p, str) and PROFILE.fullmatch(p)
        )
        if names and not set(names) & set(active):
            absent[service.name] = names
        elif service.replicas == 0:
            absent[service.name] = ()
        else:
            kept.append(service)
    return kept, absent


def drop_optional_dependencies(
    check: Checker, services: list[Service], absent: dict[str, tuple[str, ...]]
) -> list[Service]:
    names = {s.name for s in services}
    result = []
    for service in services:
        kept = []
        for dep in service.depends_on:
            where = ("services", service.name, "depends_on")
            if dep.service in names:
                kept.append(dep)
            elif dep.service in absent:
                if absent[dep.service] and dep.required:
                    wanted = " or ".join(absent[dep.service])
                    check.error(
                        where,
                        f"'{service.name}' depends on '{dep.service}', which runs only with "
                        f"profile {wanted}",
                        f"holosc --profile {absent[dep.service][0]} ..., or "
                        f"depends_on: {{{dep.service}: {{required: false}}}}",
                    )
            elif not dep.required:
                check.warn(where, f"optional dependency '{dep.service}' is not defined; ignored")
            else:
                close = difflib.get_close_matches(dep.service, sorted(names | set(absent)), n=1)
                check.error(
                    where,
                    f"unknown service '{dep.service}'",
                    f"did you mean '{close[0]}'?" if close else None,
                )
        result.append(dataclasses.replace(service, depends_on=tuple(dict.fromkeys(kept))))
    return result


def order(check: Checker, services: list[Service]) -> list[Service]:
    """Kahn's algorithm: ready services in alphabetical order, dependencies first."""
    by_name = {s.name: s for s in services}
    pending = {s.name: {d.service for d in s.depends_on} for s in services}
    ordered: list[Service] = []
    while True:
        ready = sorted(n for n, deps in pending.items() if not deps)
        if not ready:
            break
        for name in ready:
            ordered.append(by_name[name])
            del pending[name]
        for deps in pending.values():
            deps.difference_update(ready)
    for name in sorted(pending):
        check.error(
            ("services", name, "depends_on"),
            f"dependency cycle: '{name}' waits for "
            f"{', '.join(repr(d) for d in sorted(pending[name]))}, which wait(s) for it",
            "remove one depends_on entry",
        )
    return ordered + [by_name[n] for n in sorted(pending)]


def check_cross_service(
    check: Checker, services: list[Service], volumes: dict[str, Volume], project: str
) -> None:
    total = sum(s.replicas for s in services)
    if total > MAX_INSTANCES:
        check.error(
            ("services",),
            f"the project has {total} instances; holosc runs at most {MAX_INSTANCES} per project",
        )
    by_name = {s.name: s for s in services}
    host_ports: dict[int, str] = {}
    users: dict[str, list[tuple[str, bool]]] = {}
    for service in services:
        _check_conditions(check, service, by_name)
        _check_host_ports(check, service, host_ports)
        for mount in service.mounts:
            if mount.kind is MountKind.VOLUME:
                users.setdefault(mount.source, []).extend(
                    (layout.instance_name(service.name, r), not mount.read_only)
                    for r in range(service.replicas)
                )
    _check_volume_writers(check, users)


def _check_conditions(check: Checker, service: Service, by_name: dict[str, Service]) -> None:
    at = ("services", service.name)
    for dep in service.depends_on:
        target = by_name.get(dep.service)
        if dep.condition is Condition.COMPLETED:
            check.error(
                (*at, "depends_on", dep.service),
                "condition service_completed_successfully is not supported: a VM "
                "service runs until it is stopped",
                "use service_started, or service_healthy with a healthcheck",
            )
        if dep.condition is Condition.HEALTHY and target and target.healthcheck is None:
            check.error(
                (*at, "depends_on"),
                f"'{dep.service}' has no healthcheck, so "
                "condition service_healthy can never be met",
                f"add a healthcheck to '{dep.service}' or use service_started",
            )


def _check_host_ports(check: Checker, service: Service, host_ports: dict[int, str]) -> None:
    """Each replica publishes port + index: no two services may claim one host port."""
    for i, port in enumerate(service.ports):
        if port.host is None:
            continue
        for r in range(service.replicas):
            owner = host_ports.get(port.host + r)
            if owner and owner != service.name:
                check.error(
                    ("services", service.name, "ports", i),
                    f"host port {port.host + r} is also published by service '{owner}'",
                )
            host_ports[port.host + r] = service.name


def _check_volume_writers(check: Checker, users: dict[str, list[tuple[str, bool]]]) -> None:
    # QEMU locks disk images: a writer excludes every other user, readers may share.
    for name, attached in sorted(users.items()):
        writers = [inst for inst, rw in attached if rw]
        if writers and len(attached) > 1:
            check.errors.append(
                check.doc.diagnostic(
                    ("volumes", name) if ("volumes", name) in check.doc.marks else ("volumes",),
                    f"volume '{name}' is attached to {len(attached)} instances "
                    f"({', '.join(i for i, _ in attached)}) and {len(writers)} of them write; "
                    "QEMU lets a disk image have one writer and no other user",
                    hint="mount it :ro everywhere, or give each instance its own volume",
                    key=True,
                )
            )


def check_output_size(check: Checker, project: Project) -> None:
    """The compiled output stays under compiler.MAX_OUTPUT_BYTES."""
    sizes = compiler.output_bytes(project)
    total = sum(sizes.values())
    if total <= compiler.MAX_OUTPUT_BYTES:
        return
    name = max(sizes, key=lambda n: sizes[n])
    service = project.service(name)
    mib = 1024 * 1024
    check.error(
        ("services", name),
        f"the project would write {total / mib:.1f} MiB (compiled files and the seeds "
        f"built from them at start), over the limit of "
        f"{compiler.MAX_OUTPUT_BYTES // mib} MiB; this service makes {sizes[name] / mib:.1f} "
        f"MiB of it ({service.replicas} instance(s), each with its own seed)",
        "large files belong in a volume or a bind mount, not in cloud_init or COPY",
        key=True,
    )
