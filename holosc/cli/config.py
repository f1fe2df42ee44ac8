"""`holosc config` and `holosc schema`: the resolved model, and the JSON Schema."""

from __future__ import annotations

import base64
import json
import sys
from enum import StrEnum
from typing import Annotated

import typer

from holosc.cli import common, streams
from holosc.core import model
from holosc.core.render.escape import yaml_document
from holosc.core.validate import schema


class Format(StrEnum):
    YAML = "yaml"
    JSON = "json"


def config(
    *,
    file: common.FileOption = None,
    fmt: Annotated[Format, typer.Option("--format", help="Output format.")] = Format.YAML,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Only validate.")] = False,
    services: Annotated[bool, typer.Option("--services", help="Print service names.")] = False,
    profiles: Annotated[
        bool, typer.Option("--profiles", help="Print the profile names holos.yaml uses.")
    ] = False,
    images: Annotated[bool, typer.Option("--images", help="Print the images used.")] = False,
) -> None:
    """Print the resolved project (interpolated, defaults filled), like `docker compose config`."""
    loaded = common.load(file)
    common.print_diagnostics(loaded.warnings)
    if quiet:
        return
    if services or profiles or images:
        for line in _listing(loaded, services=services, profiles=profiles):
            print(line)
        return
    data = model.to_dict(loaded.project)
    if fmt is Format.JSON:
        streams.document(json.dumps(data, indent=2, sort_keys=True, default=_bytes) + "\n")
    else:
        streams.document(yaml_document(data))


def _bytes(value: object) -> dict[str, str]:
    """A build step's input (a COPY source's bytes) as JSON: base64, as YAML's !!binary."""
    if isinstance(value, bytes):
        return {"base64": base64.b64encode(value).decode("ascii")}
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def _listing(loaded: common.Loaded, *, services: bool, profiles: bool) -> list[str]:
    """One name a line, as `docker compose config --services/--profiles/--images`."""
    if services:
        return [s.name for s in loaded.project.services]
    if profiles:  # every profile named in the file, active or not
        raw = loaded.doc.data.get("services", {})
        named = {
            p
            for svc in raw.values()
            if isinstance(svc, dict) and isinstance(svc.get("profiles"), list)
            for p in svc["profiles"]
            if isinstance(p, str)
        }
        return sorted(named)
    return sorted({_image_name(s.image) for s in loaded.project.services})


def _image_name(image: model.Image) -> str:
    return image.ref if image.is_registry else str(image.path)


def schema_command() -> None:
    """Print the JSON Schema of holos.yaml (for editors: yaml-language-server)."""
    sys.stdout.write(schema.schema_text())
