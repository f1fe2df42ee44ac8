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
    if file is None:
        _require_compose_file()
    return names.check("project", common.load(file).project.name)


def _require_compose_file() -> None:
    """Outside the project directory, these commands work by name: say so.

    :raises LoadError: when there is no holos.yaml here.
    """
    from holosc.errors import Diagnostic, LoadError
    from holosc.load.parse import find_compose_file

    try:
        find_compose_file(Path.cwd())
    except LoadError as exc:
        message = exc.diagnostics[0].message
        hint = "name the project with -p PROJECT, pass -f FILE, or run from its directory"
        raise LoadError(
            exc.message, [Diagnostic(message, file=exc.diagnostics[0].file, hint=hint)]
        ) from None
