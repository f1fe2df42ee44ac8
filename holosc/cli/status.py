"""`holosc ps` and `holosc logs`."""

from __future__ import annotations

import dataclasses
import json
import sys
from typing import Annotated

import typer
from holos_runtime import consolelog

from holosc.cli import common, complete, options
from holosc.core import layout, names
from holosc.host import lifecycle, status


def ps(
    services: Annotated[
        list[str] | None,
        typer.Argument(
            help="Only these services or instances, of the project of holos.yaml here "
            "(or -p), as `docker compose ps SERVICE...`.",
            autocompletion=complete.services_and_instances,
            show_default=False,
        ),
    ] = None,
    *,
    project: Annotated[
        str | None, typer.Option("--project", "-p", help="Only this project (default: all).")
    ] = None,
    file: common.LongFileOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
    user: options.UserOption = False,
    system: options.SystemOption = False,
) -> None:
    """Projects and instances with state, PID, uptime, health and ports, read from systemd."""
    manager = options.manager(user, system)
    if services:
        project = options.project_name(project, file)
        for name in services:
            names.check("service or instance", name, "the command line")
    elif project is not None:
        names.check("project", project, "--project")
    manager.require()
    rows = status.all_status(manager, project)
    if services:
        rows = _only(rows, services, project)
    if as_json:
        print(json.dumps([dataclasses.asdict(r) for r in rows], indent=2))
        return
    if not rows:
        print("no projects installed", file=sys.stderr)
        return
    print(
        f"{'PROJECT':<14} {'INSTANCE':<16} {'STATE':<20} {'PID':>8} {'UPTIME':>8} "
        f"{'HEALTH':<10} PORTS"
    )
    for r in rows:
        ports = ",".join(f"127.0.0.1:{p.replace(':', '->')}" for p in r.ports) or "-"
        print(
            f"{r.project:<14} {r.instance:<16} {r.state:<20} {r.pid or '-':>8} "
            f"{status.format_uptime(r.uptime_s):>8} {r.health:<10} {ports}"
        )


def _only(
    rows: list[status.InstanceStatus], wanted: list[str], project: str | None
) -> list[status.InstanceStatus]:
    """The rows of the named services or instances; a name with none is an error."""
    known = {r.service for r in rows} | {r.instance for r in rows}
    unknown = [n for n in wanted if n not in known]
    if unknown:
        raise lifecycle.error(
            f"no such service or instance in project '{project}': {', '.join(unknown)}",
            f"services: {', '.join(sorted({r.service for r in rows})) or 'none installed'}",
        )
    return [r for r in rows if r.service in wanted or r.instance in wanted]


def logs(
    target: Annotated[
        str,
        typer.Argument(
            help="A service (all its replicas) or an instance.",
            autocompletion=complete.services_and_instances,
        ),
    ],
    *,
    follow: Annotated[bool, typer.Option("--follow", "-f", help="Keep printing.")] = False,
    lines: Annotated[int, typer.Option("--lines", "-n", help="Lines to show.")] = 50,
    console: Annotated[
        bool, typer.Option("--console", help="Show the serial console log instead of the journal.")
    ] = False,
    file: common.LongFileOption = None,
    project: options.ProjectOption = None,
    user: options.UserOption = False,
    system: options.SystemOption = False,
) -> None:
    """The journal of a service's or instance's units (QEMU, stop helper, health probes)."""
    manager = options.manager(user, system)
    name = options.project_name(project, file)
    names.check("service or instance", target, "the command line")
    units = lifecycle.installed_units(manager, name)
    if target in units.instances:
        instances, unit_names = [target], [units.unit(target)]
    else:
        insts, gates = units.of_service(target)
        if not insts:
            raise lifecycle.error(
                f"no service or instance '{target}' in project '{name}'",
                f"instances: {', '.join(units.instances)}",
            )
        instances = [i for i in units.instances if units.unit(i) in insts]
        unit_names = insts + gates
    if console:
        for inst in instances:
            log = layout.console_log(manager.state_dir, name, inst)
            print(f"==> {inst} <==")
            try:
                # From the end: a guest can make its log as large as it likes.
                tail = consolelog.tail(log, lines).decode(errors="replace")
                print(tail, end="" if tail.endswith("\n") else "\n")  # escaped by streams
            except OSError as exc:
                print(f"(cannot read {log}: {exc})", file=sys.stderr)
        return
    argv = manager.journal(unit_names, lines=lines, follow=follow)
    common.replace_process(argv, "systemd (journalctl)")
