"""`holosc restart | kill | wait | port | ls`: compose's commands, with its flags and
output shapes where compose has them."""

from __future__ import annotations

import dataclasses
import json
import sys
import time
from typing import Annotated, Any

import typer

from holosc.cli import common, complete, options, streams
from holosc.cli.lifecycle import say
from holosc.core import layout, names
from holosc.host import install, lifecycle, operations
from holosc.host import targets as targets_
from holosc.host.project_lock import project_lock

TargetsArgument = Annotated[
    list[str] | None,
    typer.Argument(
        help="Services or instances (default: all).",
        autocompletion=complete.services_and_instances,
        show_default=False,
    ),
]


def restart(
    targets: TargetsArgument = None,
    *,
    file: common.FileOption = None,
    project: options.ProjectOption = None,
    user: options.UserOption = False,
    system: options.SystemOption = False,
) -> None:
    """Restart services or instances: a graceful stop, a start, their health re-checked;
    what depends on them keeps running."""
    manager = options.manager(user, system)
    name = options.project_name(project, file)
    manager.require()
    with project_lock(manager, name, "restart", say):
        units = lifecycle.installed_units(manager, name)
        operations.restart(manager, units, targets_.instances(units, targets or []), say)


def kill(
    targets: TargetsArgument = None,
    *,
    signal: Annotated[
        str, typer.Option("--signal", "-s", help="Signal to send to QEMU (name or number).")
    ] = "SIGKILL",
    file: common.FileOption = None,
    project: options.ProjectOption = None,
    user: options.UserOption = False,
    system: options.SystemOption = False,
) -> None:
    """Force-stop instances: QEMU gets SIGKILL (or --signal) with no guest shutdown; after
    a fatal signal the instance stays down until started."""
    manager = options.manager(user, system)
    name = options.project_name(project, file)
    try:
        sig = operations.signal_name(signal)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--signal") from exc
    manager.require()
    with project_lock(manager, name, "kill", say):
        units = lifecycle.installed_units(manager, name)
        operations.kill(manager, units, targets_.instances(units, targets or []), sig, say)


def wait(
    targets: TargetsArgument = None,
    *,
    down_project: Annotated[
        bool, typer.Option("--down-project", help="Take the project down when the first stops.")
    ] = False,
    file: common.FileOption = None,
    project: options.ProjectOption = None,
    user: options.UserOption = False,
    system: options.SystemOption = False,
) -> None:
    """Block until the instances stop (their guests powered off); print each one's exit
    code (QEMU's) as it does."""
    manager = options.manager(user, system)
    name = options.project_name(project, file)
    manager.require()
    units = lifecycle.installed_units(manager, name)
    chosen = targets_.instances(units, targets or [])
    common.note(f"waiting for {' '.join(chosen)} to stop")

    def report(exited: operations.Exited) -> bool:
        print(f"{exited.instance} {exited.code}", flush=True)
        return not down_project

    operations.wait(manager, units, chosen, report)
    if down_project:
        with project_lock(manager, name, "down", say):
            lifecycle.down(manager, name, volumes=False, say=say)


def port(
    service: Annotated[
        str,
        typer.Argument(
            help="Service (or instance).", autocompletion=complete.services_and_instances
        ),
    ],
    guest_port: Annotated[int, typer.Argument(help="Port in the guest (22: its SSH).")],
    *,
    index: Annotated[
        int, typer.Option("--index", help="Replica, counted from 1 as compose does (1: web-0).")
    ] = 1,
    protocol: Annotated[str, typer.Option("--protocol", help="tcp or udp.")] = "tcp",
    file: common.FileOption = None,
    project: options.ProjectOption = None,
    user: options.UserOption = False,
    system: options.SystemOption = False,
) -> None:
    """Print the host address a guest port is published on (`127.0.0.1:8080`)."""
    manager = options.manager(user, system)
    name = options.project_name(project, file)
    names.check("service or instance", service, "the command line")
    if protocol not in ("tcp", "udp"):
        raise typer.BadParameter("tcp or udp", param_hint="--protocol")
    lock = install.read_lock(manager, name)
    if lock is None:
        raise lifecycle.error(f"project '{name}' is not installed", "holosc up")
    instance = service if service in lock.instances else layout.instance_name(service, index - 1)
    if instance not in lock.instances:
        raise lifecycle.error(
            f"project '{name}' has no instance {instance}",
            f"instances: {', '.join(lock.instances)}",
        )
    found = operations.host_port({instance: lock.instances[instance]}, guest_port, protocol)
    if found is None:
        raise lifecycle.error(f"{instance}: no host port is published for {guest_port}/{protocol}")
    print(f"127.0.0.1:{found}")


def ls(
    *,
    all_: Annotated[bool, typer.Option("--all", "-a", help="Stopped projects too.")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Only names.")] = False,
    format_: Annotated[str, typer.Option("--format", help="table or json.")] = "table",
    user: options.UserOption = False,
    system: options.SystemOption = False,
) -> None:
    """List projects: name, state of their instances, where their holos.yaml is."""
    manager = options.manager(user, system)
    if format_ not in ("table", "json"):
        raise typer.BadParameter("table or json", param_hint="--format")
    manager.require()
    rows = [r for r in operations.projects(manager) if all_ or r.running]
    if quiet:
        for row in rows:
            print(row.name)
    elif format_ == "json":
        shown = [{"Name": r.name, "Status": r.status, "ConfigFiles": r.config} for r in rows]
        print(json.dumps(shown, indent=2))  # compose's keys
    else:
        width = max([4, *(len(r.name) for r in rows)]) + 2
        print(f"{'NAME':<{width}}{'STATUS':<24}CONFIG FILES")
        for row in rows:
            print(f"{row.name:<{width}}{row.status:<24}{row.config}")
    if not rows and not quiet and format_ == "table":
        print("no projects" + ("" if all_ else " running (-a: stopped ones too)"), file=sys.stderr)


def stats(
    targets: TargetsArgument = None,
    *,
    no_stream: Annotated[
        bool, typer.Option("--no-stream", help="One sample, then exit (as docker stats).")
    ] = False,
    as_json: Annotated[
        bool, typer.Option("--json", help="One JSON array per sample, one line each.")
    ] = False,
    interval: Annotated[
        float, typer.Option("--interval", help="Seconds between samples.", min=0.2)
    ] = 2.0,
    file: common.FileOption = None,
    project: options.ProjectOption = None,
    user: options.UserOption = False,
    system: options.SystemOption = False,
) -> None:
    """Live CPU, memory and disk I/O of each running instance, from systemd's cgroup
    accounting and QMP (docs/units.md, "Resource figures")."""
    from holosc.host import stats as sampling

    manager = options.manager(user, system)
    name = options.project_name(project, file)
    manager.require()
    units = lifecycle.installed_units(manager, name)
    chosen = targets_.instances(units, targets or [])
    before = sampling.sample(manager, units, chosen)
    while True:
        time.sleep(interval)
        after = sampling.sample(manager, units, chosen)
        rows = sampling.rows(before, after)
        if as_json:
            print(json.dumps([dataclasses.asdict(r) for r in rows]), flush=True)
        else:
            if not no_stream and sys.stdout.isatty():
                streams.control("\x1b[H\x1b[2J", sys.stdout)  # redraw in place
            _stats_table(rows, sampling.human)
        if no_stream:
            return
        before = after


def _stats_table(rows: list[Any], human: Any) -> None:
    print(f"{'NAME':<16} {'CPU %':>7}  {'MEM USAGE / LIMIT':<21}  {'MEM %':>6}  "
          f"{'NET I/O':<15}  BLOCK I/O")  # fmt: skip
    for r in rows:
        cpu = "-" if r.cpu_percent is None else f"{r.cpu_percent:.2f}%"
        mem = f"{human(r.mem_usage)} / {human(r.mem_limit)}"
        pct = "-" if r.mem_percent is None else f"{r.mem_percent:.2f}%"
        net = "-" if r.net_rx is None else f"{human(r.net_rx, False)} / {human(r.net_tx, False)}"
        block = f"{human(r.block_read, False)} / {human(r.block_written, False)}"
        print(f"{r.name:<16} {cpu:>7}  {mem:<21}  {pct:>6}  {net:<15}  {block}", flush=True)


def run(
    service: Annotated[
        str, typer.Argument(help="Service to run a one-off of.", autocompletion=complete.services)
    ],
    command: Annotated[list[str] | None, typer.Argument(help="Command (default: a shell).")] = None,
    *,
    rm: Annotated[
        bool, typer.Option("--rm", help="Remove the one-off (unit state, disk, files) after.")
    ] = False,
    login: Annotated[str | None, typer.Option("--login", "-l", help="Login user.")] = None,
    wait: Annotated[float, typer.Option("--wait", "-w", help="Seconds to wait for sshd.")] = 900,
    file: common.FileOption = None,
    user: options.UserOption = False,
    system: options.SystemOption = False,
) -> None:
    """Run a command in a one-off instance of a service, on its own disk and ports
    (`holosc run --rm web -- uname -a`); its dependencies are started as `up` would."""
    from pathlib import PurePosixPath

    from holosc.cli.guest import _wait_for_ssh
    from holosc.core.lock import LOCK_FILE
    from holosc.host import guestssh, oneoff, run

    manager = options.manager(user, system)
    names.check("service", service, "the command line")
    if command and command[0] == "--":
        command = command[1:]
    loaded = common.load(file, with_key=True, state_root=manager.state_dir)
    name = loaded.project.name
    manager.require()
    with project_lock(manager, name, "run", say):
        installed = install.read_lock(manager, name)
        if installed is None:
            raise lifecycle.error(f"project '{name}' is not installed", "holosc up first")
        index = oneoff.free_index(manager, loaded.project, service)
        variant = oneoff.with_replicas(loaded.project, service, index + 1)
        output = common.compile_loaded(dataclasses.replace(loaded, project=variant), installed)
        inst = layout.instance_name(service, index)
        files = {p: (f.data, f.mode) for p, f in output.files.items()}
        one = oneoff.install_oneoff(
            manager,
            name,
            inst,
            oneoff.instance_files(files, name, inst),
            output.files[PurePosixPath(LOCK_FILE)].data,
        )
    code = 1
    try:
        say(f"{inst}: starting (a one-off {service})")
        lifecycle.start_units(manager, lifecycle.installed_units(manager, name), [one.unit], say)
        address = guestssh.target(one.info, login)
        say(f"{inst}: waiting for its sshd (127.0.0.1:{address[0]})")
        if not _wait_for_ssh(address[0], wait):
            say(f"holosc: warning: {inst}: no SSH banner after {wait:g} s; trying anyway")
        extra = ("-o", "ConnectTimeout=30", "-o", "ServerAliveInterval=15")  # the banner too
        code = run.interactive(
            guestssh.ssh_argv(manager, name, inst, address, command or [], extra),
            hint="install openssh-client",
        )
    finally:
        if rm:
            oneoff.remove(manager, one)
            say(f"{inst}: removed")
        else:
            manager.ctl("stop", "--job-mode=ignore-dependencies", units=[one.unit], check=False)
            say(f"{inst}: stopped; its disk stays until holosc down (--rm removes it at once)")
    raise typer.Exit(code)
