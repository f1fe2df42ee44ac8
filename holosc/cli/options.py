"""Options shared by the lifecycle commands: scope and project selection."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from holosc.cli import common
from holosc.core import names
from holosc.host import systemd

UserOption = Annotated[bool, typer.Option("--user", help="Use the user's systemd manager.")]
SystemOption = Annotated[
    bool, typer.Option("--system", help="Use the system manager (default when root).")
]
ProjectOption = Annotated[
    str | None,
    typer.Option("--project", "-p", help="Project name (default: from holos.yaml here)."),
]


def manager(user: bool, system: bool) -> systemd.Manager:
    if user and system:
        raise typer.BadParameter("--user and --system exclude each other")
    return systemd.manager("user" if user else "system" if system else None)


def project_name(project: str | None, file: Path | None) -> str:
    """The project named on the command line, or the one holos.yaml describes."""
    if project is not None:
        return names.check("project", project, "--project")
    return names.check("project", common.load(file).project.name)
