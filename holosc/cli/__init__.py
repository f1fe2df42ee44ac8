"""The `holosc` command line: one module per group of commands (build, lifecycle, guest,
status, images, ...), domain errors turned into exit codes (holosc.errors.ExitCode).
"""

from __future__ import annotations

import sys
import traceback
from typing import Annotated

import typer

from holosc.cli import (
    build,
    common,
    config,
    devices,
    doctor,
    export,
    guest,
    images,
    importer,
    lifecycle,
    status,
    validate,
)
from holosc.errors import ExitCode

EPILOG = f"Exit codes: {ExitCode.table()}."

app = typer.Typer(
    name="holosc",
    help="docker compose for KVM, as a compiler: holos.yaml → systemd units + QEMU.",
    epilog=EPILOG,
    no_args_is_help=True,
    add_completion=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _print_version(value: bool) -> None:
    if value:
        print(f"holosc {version_text()}")
        raise typer.Exit()


def version_text() -> str:
    from importlib.metadata import version

    return version("holosc")


@app.callback()
def _global_options(
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_print_version, is_eager=True, help="Print the version."
        ),
    ] = False,
    color: Annotated[
        common.Color,
        typer.Option(
            "--color",
            help="Show source lines under errors: auto (on a terminal), always, never "
            "(NO_COLOR turns colour off).",
        ),
    ] = common.Color.AUTO,
    profile: Annotated[
        list[str] | None,
        typer.Option(
            "--profile",
            help="Enable services of this profile (repeatable; default: $HOLOS_PROFILES, "
            "comma-separated).",
        ),
    ] = None,
    quiet: Annotated[
        bool, typer.Option("--quiet", "-q", help="No progress or summaries; errors still show.")
    ] = False,
) -> None:
    common.color = color
    common.quiet = quiet
    common.set_profiles(profile)


@app.command("version")
def version_command() -> None:
    """Print the version (as `holosc --version`)."""
    print(f"holosc {version_text()}")


app.command(epilog=EPILOG)(build.build)
app.command(epilog=EPILOG)(validate.validate)
app.command(epilog=EPILOG)(config.config)
app.command("schema")(config.schema_command)
for command in (
    lifecycle.up,
    lifecycle.down,
    lifecycle.start,
    lifecycle.stop,
    status.ps,
    status.logs,
    guest.console,
    lifecycle.install,
    lifecycle.uninstall,
):
    app.command(epilog=EPILOG)(command)
app.command("exec", epilog=EPILOG, context_settings={"allow_interspersed_args": False})(guest.exec_)
app.command(epilog=EPILOG)(devices.devices)
app.command("import", epilog=EPILOG)(importer.import_)
app.command(epilog=EPILOG)(doctor.doctor)
app.command(epilog=EPILOG)(images.pull)
app.add_typer(images.images_app, name="images")
app.command(epilog=EPILOG)(images.verify)
app.add_typer(export.app, name="export")


def main() -> None:
    try:
        app()
    except SystemExit:
        raise
    except KeyboardInterrupt:
        sys.exit(int(ExitCode.INTERRUPTED))
    except Exception:  # a traceback is a bug: say so, with the details
        traceback.print_exc()
        print("holosc: internal error (this is a bug; please report it)", file=sys.stderr)
        sys.exit(int(ExitCode.INTERNAL))
