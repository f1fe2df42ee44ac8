"""`holosc config` and `holosc schema`: the resolved model, and the JSON Schema."""

from __future__ import annotations

import json
import sys
from enum import StrEnum
from typing import Annotated

import typer

from holosc import model, schema
from holosc.cli import common
from holosc.errors import HolosError
from holosc.render.escape import yaml_document


class Format(StrEnum):
    YAML = "yaml"
    JSON = "json"


def config(
    *,
    file: common.FileOption = None,
    fmt: Annotated[Format, typer.Option("--format", help="Output format.")] = Format.YAML,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Only validate.")] = False,
    services: Annotated[bool, typer.Option("--services", help="Print service names.")] = False,
) -> None:
    """Print the resolved project (interpolated, defaults filled), like `docker compose config`."""
    try:
        loaded = common.load(file)
    except HolosError as exc:
        common.fail(exc)
    common.print_diagnostics(loaded.warnings)
    if quiet:
        return
    if services:
        for service in loaded.project.services:
            print(service.name)
        return
    data = model.to_dict(loaded.project)
    if fmt is Format.JSON:
        sys.stdout.write(json.dumps(data, indent=2, sort_keys=True) + "\n")
    else:
        sys.stdout.write(yaml_document(data))


def schema_command() -> None:
    """Print the JSON Schema of holos.yaml (for editors: yaml-language-server)."""
    sys.stdout.write(schema.schema_text())
