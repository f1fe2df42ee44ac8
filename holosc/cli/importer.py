"""`holosc import`: libvirt domains (via virsh, or an XML file) → holos.yaml."""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path
from typing import Annotated

import typer

from holosc.cli import streams
from holosc.emit import safedir
from holosc.errors import EmitError, HolosError
from holosc.load.regular import read_regular
from holosc.tools import importer


def import_(
    domains: Annotated[
        list[str] | None,
        typer.Argument(
            metavar="DOMAIN...",
            help="libvirt domain names (read with virsh dumpxml).",
            show_default=False,
        ),
    ] = None,
    *,
    all_domains: Annotated[
        bool, typer.Option("--all", help="Import every defined domain (virsh list --all).")
    ] = False,
    xml: Annotated[
        Path | None,
        typer.Option(
            "--xml",
            metavar="FILE",
            help="Read one domain from this XML file; virsh is not needed.",
            dir_okay=False,
        ),
    ] = None,
    connect: Annotated[
        str | None,
        typer.Option("--connect", "-c", metavar="URI", help="libvirt URI, passed as virsh -c."),
    ] = None,
    output: Annotated[
        str | None,
        typer.Option("--output", "-o", metavar="FILE", help="Write here instead of stdout ('-')."),
    ] = None,
    project: Annotated[
        str | None,
        typer.Option(
            "--project", "-p", metavar="NAME", help="Project name (default: the first service)."
        ),
    ] = None,
) -> None:
    """Convert libvirt domains into a holos.yaml (vcpu, memory, machine, cpu, UEFI, disk,
    PCI passthrough); everything else is reported as `warning: SERVICE: ...` on stderr."""
    names = list(domains or [])
    if xml is not None and (names or all_domains):
        raise typer.BadParameter("--xml cannot be combined with domain names or --all")
    if all_domains and names:
        raise typer.BadParameter("--all cannot be combined with explicit domain names")
    if xml is None and not names and not all_domains:
        raise typer.BadParameter("import requires a domain name, --all, or --xml <file>")
    imported = _convert(names, all_domains, xml, connect)
    text = importer.compose_document(imported, project)
    for item in imported:
        for note in item.warnings:
            print(f"warning: {item.name}: {note}", file=sys.stderr)
    if output in (None, "-"):
        streams.document(text)
    else:
        _write(Path(output), text)
        print(f"wrote {output} ({len(imported)} service(s))", file=sys.stderr)


def _convert(
    names: list[str], all_domains: bool, xml: Path | None, connect: str | None
) -> list[importer.Imported]:
    if xml is not None:
        try:
            data = read_regular(xml, importer.MAX_XML_BYTES)
        except OSError as exc:
            raise HolosError(f"cannot read {xml}: {exc.strerror or exc}") from exc
        return [importer.convert_domain(data, str(xml))]
    if all_domains:
        names = importer.virsh_list(connect)
        if not names:
            raise HolosError("virsh list --all returned no domains")
    return [importer.convert_domain(importer.virsh_dumpxml(n, connect), n) for n in names]


def _write(path: Path, text: str) -> None:
    """Replace `path` atomically with mode 0644, in a directory no other user can change
    (a holos.yaml is what `up` runs)."""
    directory = path.parent
    safedir.check_dir(directory, shared_ok=True)
    tmp: str | None = None
    try:
        fd, tmp = tempfile.mkstemp(dir=directory, prefix=f".{path.name}.")
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except OSError as exc:
        if tmp is not None:
            Path(tmp).unlink(missing_ok=True)
        raise EmitError(f"cannot write {path}: {exc.strerror}") from exc
