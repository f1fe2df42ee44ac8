"""`holosc build`: compile holos.yaml into an output directory."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from holosc.cli import common
from holosc.emit.write import diff, emit, plan_changes
from holosc.errors import ExitCode


def build(
    *,
    file: common.FileOption = None,
    output: Annotated[
        Path | None,
        typer.Option(
            "--output",
            "-o",
            help="Output directory (default: deploy/ beside holos.yaml).",
            file_okay=False,
        ),
    ] = None,
    check: Annotated[
        bool,
        typer.Option(
            "--check", help="Write nothing; exit 1 if the output directory is out of date."
        ),
    ] = False,
    show_diff: Annotated[
        bool,
        typer.Option("--diff", help="Write nothing; print a unified diff of what would change."),
    ] = False,
    strict: Annotated[bool, typer.Option("--strict", help="Treat warnings as errors.")] = False,
) -> None:
    """Compile holos.yaml into systemd units, launch scripts and cloud-init seeds."""
    loaded = common.load(file)
    common.exit_on_warnings(loaded.warnings, strict)
    compiled = common.compile_loaded(loaded)
    root = output or loaded.file.parent / "deploy"
    if check or show_diff:
        if show_diff:
            sys.stdout.write(diff(compiled, root))
        changes = plan_changes(compiled, root)
        if changes.any:
            if check:
                for rel in changes.written:
                    print(f"would write {rel}", file=sys.stderr)
                for rel in changes.removed:
                    print(f"would remove {rel}", file=sys.stderr)
            raise typer.Exit(int(ExitCode.DRIFT))
        return
    changes = emit(compiled, root)
    for rel in changes.kept:
        print(
            f"holosc: kept {rel}: no longer compiled, but edited since holosc wrote it",
            file=sys.stderr,
        )
    common.note(
        f"{root}: {len(changes.written)} written, {len(changes.removed)} removed, "
        f"{changes.unchanged} unchanged"
    )
