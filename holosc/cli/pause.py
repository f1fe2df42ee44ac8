"""`holosc pause` and `holosc unpause`: freeze a running guest's CPUs (QMP `stop`) and
let them run on (`cont`). systemd still sees QEMU running, so nothing restarts and no
health gate flaps; `ps` shows the instance as active/paused."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated

import typer

from holosc.cli import common, complete, options
from holosc.core import layout
from holosc.host import lifecycle, qmp, targets
from holosc.host.project_lock import project_lock

TargetsArgument = Annotated[
    list[str] | None,
    typer.Argument(
        help="Services or instances (default: all).",
        autocompletion=complete.services_and_instances,
        show_default=False,
    ),
]


def _command(verb: str, qmp_command: str, doc: str) -> Callable[..., None]:
    def command(
        names: TargetsArgument = None,
        *,
        file: common.FileOption = None,
        project: options.ProjectOption = None,
        user: options.UserOption = False,
        system: options.SystemOption = False,
    ) -> None:
        manager = options.manager(user, system)
        name = options.project_name(project, file)
        manager.require()
        with project_lock(manager, name, verb, common.note):
            units = lifecycle.installed_units(manager, name)
            chosen = targets.instances(units, names or [])
            states = manager.show(units.instance_units(chosen), ["ActiveState"])
            stopped = [i for i in chosen if states[units.unit(i)].get("ActiveState") != "active"]
            if stopped:
                raise lifecycle.error(
                    f"not running: {', '.join(stopped)}", f"holosc start, then holosc {verb}"
                )
            for inst in chosen:
                socket = layout.qmp_socket(manager.runtime_dir, name, inst)
                try:
                    with qmp.session(socket) as session:
                        session.execute(qmp_command)
                except qmp.QmpError as exc:
                    raise lifecycle.error(f"{inst}: {exc}") from exc
                common.note(f"{inst}: {'paused' if verb == 'pause' else 'running'}")

    command.__name__ = command.__qualname__ = verb
    command.__doc__ = doc
    return command


pause = _command(
    "pause",
    "stop",
    "Pause the guests' CPUs (QMP stop): memory and disks stay, systemd still sees them "
    "running, their health gates hold.",
)
unpause = _command("unpause", "cont", "Let paused guests run on (QMP cont).")
