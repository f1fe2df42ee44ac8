"""`holosc validate`: check holos.yaml and print a summary of the plan."""

from __future__ import annotations

from typing import Annotated

import typer

from holosc.cli import common
from holosc.core import plan as P


def validate(
    *,
    file: common.FileOption = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Print nothing on success.")] = False,
    strict: Annotated[bool, typer.Option("--strict", help="Treat warnings as errors.")] = False,
) -> None:
    """Validate holos.yaml: every error at once, as FILE:LINE:COL: error: PATH: message."""
    loaded = common.load(file)
    common.exit_on_warnings(loaded.warnings, strict)
    if quiet:
        return
    plan = P.build_plan(loaded.project)
    project = loaded.project
    print(f"project: {project.name}")
    print(f"order: {' '.join(s.name for s in project.services)}")
    for network in plan.networks:
        kind = " internal" if network.internal else ""
        where = f"host bridge {network.external}" if network.external else network.subnet
        print(f"network {network.name}: {where}{kind}")
    print(f"{'INSTANCE':<20} {'IP':<12} {'SSH':>6}  PORTS")
    for inst in plan.instances:
        ports = ",".join(f"{f.host}->{f.guest}" for f in inst.forwards) or "-"
        print(f"{inst.name:<20} {inst.ip:<12} {inst.ssh_port:>6}  {ports}")
