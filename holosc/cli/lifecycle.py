"""`holosc up | down | start | stop | install | uninstall`."""

from __future__ import annotations

import dataclasses
import os
import re
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated

import typer

from holosc.cli import common, complete, images, live, options
from holosc.core import layout, names
from holosc.host import helpers, hostsecrets, lifecycle, systemd
from holosc.host import install as installer
from holosc.host import recreate as recreating
from holosc.host.project_lock import project_lock
from holosc.tools import bake as baker
from holosc.tools import pull


def say(line: str) -> None:
    # Warnings and lock waits explain something the user must know: -q keeps them.
    # (Not "db-healthy: waiting for health": that is progress.)
    if line.startswith("holosc: warning:") or re.search(
        r": waiting for .* to finish \(lock ", line
    ):
        print(line, file=sys.stderr, flush=True)
    else:
        common.note(line)


def up(
    *,
    file: common.FileOption = None,
    user: options.UserOption = False,
    system: options.SystemOption = False,
    ssh_key: common.SshKeyOption = None,
    pull_: Annotated[
        bool,
        typer.Option(
            "--pull",
            help="Pull every registry image first, moving tags to the current upstream "
            "(new instances use it; existing disks keep the image they were created on).",
        ),
    ] = False,
    recreate: Annotated[
        bool,
        typer.Option(
            "--recreate",
            help="Recreate the root disks of instances whose image moved on (a tag that "
            "names another digest, a local image file that changed): they start afresh on "
            "the image as it is now; what was written to their root disk is lost, named "
            "volumes stay.",
        ),
    ] = False,
) -> None:
    """Build, install the units, and start the project; returns once every instance runs and
    every health gate has passed. Re-running after an edit restarts only what changed."""
    manager = options.manager(user, system)
    _preflight(manager)
    loaded = common.load(file, ssh_key=ssh_key, with_key=True, state_root=manager.state_dir)
    common.print_diagnostics(w for w in loaded.warnings if not w.missing_file)
    _require_files(loaded)
    name = loaded.project.name
    lifecycle.require_scope(loaded.project, manager)
    with project_lock(manager, name, "up", say):
        # Running instances keep their addresses and ports whatever else changed.
        output = common.compile_loaded(loaded, installer.read_lock(manager, name))
        if warning := lifecycle.disk_warning(loaded.project, manager):
            say(f"holosc: warning: {warning}")
        _pull_images(loaded, manager, refresh=pull_)
        project_dir = loaded.file.parent.resolve()
        with live.live(say) as shown:
            # Build what the cache lacks here, with its output on the terminal; the build
            # units then find every layer cached.
            baker.bake(
                loaded.project,
                output,
                project_dir,
                layout.images(manager.state_dir),
                shown.say,
                status=live.status(shown),
            )
            stale = _disks_to_recreate(loaded, manager, project_dir, recreate=recreate)
            hostsecrets.write_environment_secrets(loaded.project, manager.runtime_dir, os.environ)
            try:
                lifecycle.up(
                    output, manager, name, project_dir, shown.say, recreate=stale, progress_to=shown
                )
            except KeyboardInterrupt:
                shown.close()
                lifecycle.report_interrupted(manager, name, say)
                raise typer.Exit(130) from None


def _preflight(manager: systemd.Manager) -> None:
    """What `holosc doctor` fails on stops every VM: say so before anything starts.

    :raises RuntimeCommandError: one line per failed check, each with what to do.
    """
    from holosc.errors import Diagnostic, RuntimeCommandError
    from holosc.tools import doctor

    failed = doctor.preflight(manager)
    if failed:
        raise RuntimeCommandError(
            f"this host cannot run the project yet ({len(failed)} check(s) failed; "
            "holosc doctor shows every check)",
            [Diagnostic(f"{c.name}: {c.detail}", file="holosc", hint=c.hint) for c in failed],
        )


def _require_files(loaded: common.Loaded) -> None:
    """A file the units read at start (kernel, initrd, local image, ROM, bind source,
    secret file) that is missing on this host stops `up` before it starts anything.

    :raises ValidationError: every missing file, at its position.
    """
    from holosc.errors import ValidationError

    missing = [
        dataclasses.replace(
            w, severity="error", missing_file=False, hint="create it, or correct the path"
        )
        for w in loaded.warnings
        if w.missing_file
    ]
    if missing:
        raise ValidationError(f"{len(missing)} file(s) the VMs need are missing", missing)


def _disks_to_recreate(
    loaded: common.Loaded, manager: systemd.Manager, project_dir: Path, *, recreate: bool
) -> list[recreating.StaleDisk]:
    """The disks whose image moved on: all of them with --recreate, else none, and a
    warning names each (a rebuilt Dockerfile or a pulled tag changes no running disk)."""
    stale = recreating.stale_disks(loaded.project, manager.state_dir, project_dir)
    if recreate or not stale:
        return stale
    for disk in stale:
        say(f"holosc: warning: {disk.instance} keeps its disk: {disk.reason}")
    say(
        "holosc: warning: holosc up --recreate moves them onto the image as it is now "
        "(their root disks are recreated; named volumes stay)"
    )
    return []


def _pull_images(loaded: common.Loaded, manager: systemd.Manager, *, refresh: bool) -> None:
    """Download and verify registry images the project uses and the cache lacks (all of
    them with `refresh`) here, with progress on the terminal; the image units then find
    them cached. The download is the image units' own code (holos_runtime.fetch)."""
    pull.ensure_images(
        loaded.project,
        layout.images(manager.state_dir),
        images.ProgressReport(sys.stderr),
        refresh=refresh,
    )


def down(
    *,
    file: common.FileOption = None,
    project: options.ProjectOption = None,
    volumes: Annotated[
        bool, typer.Option("--volumes", help="Also delete named volumes and the project's SSH key.")
    ] = False,
    user: options.UserOption = False,
    system: options.SystemOption = False,
) -> None:
    """Stop the project gracefully (reverse dependency order), remove its units and instance
    disks. Named volumes and the SSH key are kept unless --volumes."""
    manager = options.manager(user, system)
    name = options.project_name(project, file)
    with project_lock(manager, name, "down", say):
        lifecycle.down(manager, name, volumes=volumes, say=say)
        hostsecrets.remove_environment_secrets(manager.runtime_dir, name)


def _service_units(manager: object, name: str, services: list[str]) -> list[str]:
    units = lifecycle.installed_units(manager, name)  # type: ignore[arg-type]
    if not services:
        return [*units.instance_units(), *units.gates]
    known = {layout.split_instance(i)[0] for i in units.instances}
    result = []
    for service in services:
        if service not in known:
            raise lifecycle.error(
                f"project '{name}' has no service '{service}'",
                f"services: {', '.join(sorted(known))}",
            )
        insts, gates = units.of_service(service)
        result += insts + gates
    return result


def _services_command(verb: str, doc: str) -> Callable[..., None]:
    """`holosc start` and `holosc stop`: one signature, two verbs."""

    def command(
        services: Annotated[
            list[str] | None,
            typer.Argument(help="Services (default: all).", autocompletion=complete.services),
        ] = None,
        *,
        file: common.FileOption = None,
        project: options.ProjectOption = None,
        user: options.UserOption = False,
        system: options.SystemOption = False,
    ) -> None:
        _start_or_stop(verb, services, file, project, user, system)

    command.__name__ = command.__qualname__ = verb
    command.__doc__ = doc
    return command


start = _services_command(
    "start", "Start the named services (and what they depend on), as installed."
)
stop = _services_command(
    "stop", "Stop the named services gracefully; other services are never touched."
)


def _start_or_stop(
    verb: str,
    services: list[str] | None,
    file: Path | None,
    project: str | None,
    user: bool,
    system: bool,
) -> None:
    manager = options.manager(user, system)
    name = options.project_name(project, file)
    for service in services or []:
        names.check("service", service, "the command line")
    manager.require()
    with project_lock(manager, name, verb, say):
        units = _service_units(manager, name, services or [])
        if verb == "start":
            lifecycle.start_units(manager, lifecycle.installed_units(manager, name), units, say)
        else:
            lifecycle.stop_units(manager, name, units, say)
    say(f"{verb} done: {' '.join(units)}")


def install(
    *,
    file: common.FileOption = None,
    enable: Annotated[
        bool,
        typer.Option("--enable", help="Start the project at boot (wants link of the boot target)."),
    ] = False,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Print, write nothing.")] = False,
    user: options.UserOption = False,
    system: options.SystemOption = False,
    ssh_key: common.SshKeyOption = None,
) -> None:
    """Install the compiled units without starting them; --enable for reboot survival."""
    manager = options.manager(user, system)
    loaded = common.load(file, ssh_key=ssh_key, with_key=True, state_root=manager.state_dir)
    name = loaded.project.name
    output = common.compile_loaded(loaded, installer.read_lock(manager, name))
    if dry_run:
        for path in output.files:
            dest = (
                manager.unit_dir / path.name if len(path.parts) == 1 else manager.config_dir / path
            )
            print(f"would write {dest}")
        if helpers.usable_dir(manager) is not None:
            print(f"would write {helpers.drop_in_path(manager, name)}")
        if enable:
            print(f"would link {installer.wants_link(manager, name)}")
        return
    with project_lock(manager, name, "install", say):
        installer.install(output, manager, name, loaded.file.parent.resolve())
        if enable:
            say(f"enabled: {installer.enable(manager, name)}")
        manager.ctl("daemon-reload", check=False)
    say(f"installed {name} into {manager.unit_dir} ({manager.scope} scope)")


def uninstall(
    *,
    file: common.FileOption = None,
    project: options.ProjectOption = None,
    user: options.UserOption = False,
    system: options.SystemOption = False,
) -> None:
    """Remove the installed units and boot link (disks and volumes stay). Idempotent."""
    manager = options.manager(user, system)
    name = options.project_name(project, file)
    with project_lock(manager, name, "uninstall", say):
        removed = installer.uninstall(manager, name)
        manager.ctl("daemon-reload", check=False)
    say(f"uninstalled {name}: removed {len(removed)} path(s)")
