"""The `holosc` command line: one module per group of commands (build, lifecycle, guest,
status, images, ...), domain errors turned into exit codes (holosc.errors.ExitCode).

Each command's module is imported only when that command runs (or its own --help is
asked for): `holosc --help` lists the commands from the table below without importing
the compiler, the schema validator or the seed builder.
"""

from __future__ import annotations

import importlib
import sys
import traceback
from collections.abc import Iterator, Mapping, MutableMapping
from typing import Annotated, Any, NamedTuple

import typer
import typer.core
import typer.main
import typer.models

from holosc.cli import common, streams
from holosc.errors import ExitCode, HolosError

EPILOG = f"Exit codes: {ExitCode.table()}."
HELP = "docker compose for KVM, as a compiler: holos.yaml → systemd units + QEMU."


class Command(NamedTuple):
    module: str  # holosc.cli.<module>
    function: str
    summary: str  # the docstring's first sentence (checked by tests/test_cli_imports.py)
    epilog: str | None = EPILOG
    context_settings: dict[str, Any] | None = None
    group: bool = False  # `function` names a typer.Typer of subcommands


COMMANDS = {
    "build": Command(
        "build",
        "build",
        "Compile holos.yaml into systemd units, launch scripts and cloud-init seeds.",
    ),
    "validate": Command(
        "validate",
        "validate",
        "Validate holos.yaml: every error at once, as FILE:LINE:COL: error: PATH: message.",
    ),
    "config": Command(
        "config",
        "config",
        "Print the resolved project (interpolated, defaults filled), like `docker compose config`.",
    ),
    "schema": Command(
        "config",
        "schema_command",
        "Print the JSON Schema of holos.yaml (for editors: yaml-language-server).",
        epilog=None,
    ),
    "bake": Command(
        "bake",
        "bake",
        "Build the images of services with a dockerfile: each RUN and COPY a cached layer, "
        "the builder VM booted only for what the cache lacks.",
    ),
    "up": Command(
        "lifecycle",
        "up",
        "Build, install the units, and start the project; returns once every instance runs "
        "and every health gate has passed.",
    ),
    "down": Command(
        "lifecycle",
        "down",
        "Stop the project gracefully (reverse dependency order), remove its units and "
        "instance disks.",
    ),
    "start": Command(
        "lifecycle", "start", "Start the named services (and what they depend on), as installed."
    ),
    "stop": Command(
        "lifecycle", "stop", "Stop the named services gracefully; other services are never touched."
    ),
    "restart": Command(
        "ops",
        "restart",
        "Restart services or instances: a graceful stop, a start, their health re-checked; "
        "what depends on them keeps running.",
    ),
    "kill": Command(
        "ops",
        "kill",
        "Force-stop instances: QEMU gets SIGKILL (or --signal) with no guest shutdown; after "
        "a fatal signal the instance stays down until started.",
    ),
    "wait": Command(
        "ops",
        "wait",
        "Block until the instances stop (their guests powered off); print each one's exit "
        "code (QEMU's) as it does.",
    ),
    "run": Command(
        "ops",
        "run",
        "Run a command in a one-off instance of a service, on its own disk and ports "
        "(`holosc run --rm web -- uname -a`); its dependencies are started as `up` would.",
        context_settings={"allow_interspersed_args": False},
    ),
    "pause": Command(
        "pause",
        "pause",
        "Pause the guests' CPUs (QMP stop): memory and disks stay, systemd still sees them "
        "running, their health gates hold.",
    ),
    "unpause": Command("pause", "unpause", "Let paused guests run on (QMP cont)."),
    "snapshot": Command(
        "snapshot",
        "app",
        "Snapshots of instances' disks (running ones live): save, restore, list, rm.",
        group=True,
    ),
    "ps": Command(
        "status",
        "ps",
        "Projects and instances with state, PID, uptime, health and ports, read from systemd.",
    ),
    "stats": Command(
        "ops",
        "stats",
        "Live CPU, memory and disk I/O of each running instance, from systemd's cgroup "
        'accounting and QMP (docs/units.md, "Resource figures").',
    ),
    "ls": Command(
        "ops", "ls", "List projects: name, state of their instances, where their holos.yaml is."
    ),
    "port": Command(
        "ops", "port", "Print the host address a guest port is published on (`127.0.0.1:8080`)."
    ),
    "logs": Command(
        "status",
        "logs",
        "The journal of a service's or instance's units (QEMU, stop helper, health probes).",
    ),
    "console": Command(
        "guest",
        "console",
        "Attach to an instance's serial console; Ctrl-] detaches.",
    ),
    "install": Command(
        "lifecycle",
        "install",
        "Install the compiled units without starting them; --enable for reboot survival.",
    ),
    "uninstall": Command(
        "lifecycle",
        "uninstall",
        "Remove the installed units and boot link (disks and volumes stay).",
    ),
    "exec": Command(
        "guest",
        "exec_",
        "SSH into an instance with the project key (`holosc exec web-0 -- hostname`; "
        "`--login NAME` logs in as NAME, `--user` is the user manager as in every command).",
        context_settings={"allow_interspersed_args": False},
    ),
    "ssh-config": Command(
        "access",
        "ssh_config",
        "Print an OpenSSH Host block per instance (`ssh -F <(holosc ssh-config) web-0.shop`).",
    ),
    "cp": Command(
        "access",
        "cp",
        "Copy files or directories between a guest and this host "
        "(`holosc cp web-0:/var/log/app.log .`).",
    ),
    "top": Command(
        "access",
        "top",
        "The processes running in each guest (`ps -ef` over SSH with the pinned host key), "
        "as `docker compose top`.",
    ),
    "devices": Command(
        "devices",
        "devices",
        "List PCI devices for passthrough: ids and names, driver, IOMMU group and its members.",
    ),
    "import": Command(
        "importer",
        "import_",
        "Convert libvirt domains into a holos.yaml (vcpu, memory, machine, cpu, UEFI, disk, "
        "PCI passthrough); everything else is reported as `warning: SERVICE: ...` on stderr.",
    ),
    "doctor": Command(
        "doctor",
        "doctor",
        "Check the host: KVM (or the TCG fallback), QEMU, qemu-img, ssh, OVMF, virtiofsd, "
        "systemd, the runtime helpers in systemd's search path, the state directory and IOMMU.",
    ),
    "pull": Command(
        "images",
        "pull",
        "Download a registry image into the cache, verified against the upstream checksum.",
    ),
    "images": Command(
        "images",
        "images_app",
        "The image cache: each tag's digest, size, when it was pulled and which instances "
        "use it, and the images built from Dockerfiles (images prune, images rm to delete).",
        group=True,
    ),
    "verify": Command(
        "images",
        "verify",
        "Re-hash cached images against the checksums recorded when they were pulled (offline).",
    ),
    "export": Command(
        "export",
        "app",
        "Write the project for another engine (kubevirt: Kubernetes manifests).",
        group=True,
    ),
}


def load_command(name: str) -> typer.core.TyperCommand | typer.core.TyperGroup:
    """Import one command's module and build its click command."""
    spec = COMMANDS[name]
    module = importlib.import_module(f"holosc.cli.{spec.module}")
    if spec.group:
        group = typer.main.get_group(getattr(module, spec.function))
        assert isinstance(group, typer.core.TyperGroup)
        return group
    info = typer.models.CommandInfo(
        name=name,
        callback=getattr(module, spec.function),
        epilog=spec.epilog,
        context_settings=spec.context_settings,
    )
    command = typer.main.get_command_from_info(
        info, pretty_exceptions_short=True, rich_markup_mode=None
    )
    assert isinstance(command, typer.core.TyperCommand)
    return command


class LazyCommands(MutableMapping[str, Any]):
    """The commands by name: those defined here first, then COMMANDS, each built on first
    access."""

    def __init__(self, eager: Mapping[str, Any]) -> None:
        self.built: dict[str, Any] = dict(eager)
        self.eager = tuple(eager)

    def __getitem__(self, name: str) -> Any:
        if name not in self.built:
            if name not in COMMANDS:
                raise KeyError(name)
            self.built[name] = load_command(name)
        return self.built[name]

    def __setitem__(self, name: str, command: Any) -> None:
        self.built[name] = command

    def __delitem__(self, name: str) -> None:
        raise TypeError("commands cannot be removed")

    def __iter__(self) -> Iterator[str]:
        yield from self.eager
        yield from (n for n in COMMANDS if n not in self.eager)

    def __len__(self) -> int:
        return len(self.eager) + len(COMMANDS)


class LazyGroup(typer.core.TyperGroup):
    """The top-level group: commands are imported on first use, help lists summaries."""

    def __init__(self, *, commands: Any = None, **attrs: Any) -> None:
        super().__init__(commands=LazyCommands(commands or {}), **attrs)  # type: ignore[arg-type]

    def list_commands(self, ctx: Any) -> list[str]:
        return list(self.commands)

    def invoke(self, ctx: Any) -> Any:
        """Every command's domain error becomes its message and exit code here, once."""
        try:
            return super().invoke(ctx)
        except HolosError as exc:
            common.fail(exc)

    def format_commands(self, ctx: Any, formatter: Any) -> None:
        from typer._click.utils import make_default_short_help

        limit = formatter.width - 6 - max(map(len, self.commands))
        rows = [
            (
                name,
                make_default_short_help(COMMANDS[name].summary, limit)
                if name in COMMANDS
                else self.commands[name].get_short_help_str(limit),
            )
            for name in self.commands
        ]
        with formatter.section("Commands"):
            formatter.write_dl(rows)


app = typer.Typer(
    name="holosc",
    cls=LazyGroup,
    help=HELP,
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
            help="Enable services of this profile (repeatable; '*' enables all; default: "
            "HOLOS_PROFILES, else COMPOSE_PROFILES, comma-separated, from the environment "
            "or .env).",
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


def main() -> None:
    streams.install()  # from here on, every print passes terminal_safe
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
