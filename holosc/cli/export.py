"""`holosc export kubevirt`: the project as Kubernetes manifests for KubeVirt and CDI."""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated

import typer

from holosc.cli import common, streams
from holosc.core import layout
from holosc.core.model import Project
from holosc.export.kubevirt import (
    EXPOSE,
    LOCK_FILE,
    Options,
    export_project,
    ssh_secret_command,
    ssh_secret_name,
)
from holosc.export.write import write_dir

app = typer.Typer(
    name="export",
    help="Write the project for another engine (kubevirt: Kubernetes manifests).",
    no_args_is_help=True,
    add_completion=False,
    rich_markup_mode=None,
)


def _container_disks(values: list[str]) -> dict[str, str]:
    disks: dict[str, str] = {}
    for value in values:
        service, sep, image = value.partition("=")
        if not sep or not service or not image:
            raise typer.BadParameter(
                f"{value!r}: expected SERVICE=IMAGE", param_hint="--container-disk"
            )
        disks[service] = image
    return disks


@app.command()
def kubevirt(
    *,
    file: common.FileOption = None,
    output: Annotated[
        Path | None,
        typer.Option(
            "--output",
            "-o",
            help="Directory to write one manifest per file into (default: stdout, one stream).",
            file_okay=False,
        ),
    ] = None,
    namespace: Annotated[
        str | None,
        typer.Option(
            "--namespace", "-n", help="Namespace of every manifest (default: the project name)."
        ),
    ] = None,
    storage_class: Annotated[
        str | None,
        typer.Option(
            "--storage-class", help="StorageClass of disks and volumes (default: the cluster's)."
        ),
    ] = None,
    expose: Annotated[
        str,
        typer.Option("--expose", help=f"Service type for published ports: {' or '.join(EXPOSE)}."),
    ] = "clusterip",
    ignore_extra_args: Annotated[
        bool,
        typer.Option(
            "--ignore-extra-args", help="Leave vm.extra_args out (a warning) instead of failing."
        ),
    ] = False,
    container_disk: Annotated[
        list[str] | None,
        typer.Option(
            "--container-disk",
            metavar="SERVICE=IMAGE",
            help="Boot SERVICE from a containerDisk image instead of importing its image.",
        ),
    ] = None,
    strict: Annotated[bool, typer.Option("--strict", help="Treat warnings as errors.")] = False,
) -> None:
    """Kubernetes manifests for KubeVirt: a VirtualMachine (or VirtualMachinePool) per
    service, Services, volumes and image imports. See docs/kubevirt.md."""
    options = Options(
        namespace=namespace,
        storage_class=storage_class,
        expose=expose,
        ignore_extra_args=ignore_extra_args,
        container_disks=_container_disks(container_disk or []),
    )
    loaded = common.load(file)
    result = export_project(loaded.project, options, loaded.doc)
    common.exit_on_warnings((*loaded.warnings, *result.warnings), strict)
    if output is None:
        streams.document(result.stream())
    else:
        changes = write_dir(result.output(), output, LOCK_FILE)
    _print_notes(result.notes, loaded.project, namespace)
    if output is not None:
        print(
            f"{output}: {len(changes.written)} written, {len(changes.removed)} removed, "
            f"{changes.unchanged} unchanged",
            file=sys.stderr,
        )


def _print_notes(notes: Sequence[str], project: Project, namespace: str | None) -> None:
    for note in notes:
        print(f"holosc: note: {note}", file=sys.stderr)
    # Only the public half, and only in this hint: the manifests hold no key at all. The
    # state directory is not asked of systemd: exporting needs no systemd on this machine.
    private = os.environ.get("HOLOSC_SSH_KEY") or str(layout.key(layout.STATE, project.name))
    print(
        f"holosc: note: the VMs take the project's SSH public key from Secret "
        f"{ssh_secret_name(project)}: "
        f"{ssh_secret_command(project, namespace, private + '.pub')}"
        + ("" if "HOLOSC_SSH_KEY" in os.environ else " (%S: /var/lib as root, else ~/.config)"),
        file=sys.stderr,
    )
