"""Services and instances named on the command line, resolved to installed instances."""

from __future__ import annotations

from collections.abc import Sequence

from holosc.core import layout, names
from holosc.host.lifecycle import Units, error


def instances(units: Units, targets: Sequence[str]) -> list[str]:
    """The instances of `targets` (services or instances; none: every instance), in
    dependency order, each once.

    :raises NameError_: for a target that is no DNS label.
    :raises RuntimeCommandError: naming every target the project does not have.
    """
    for target in targets:
        names.check("service or instance", target, "the command line")
    if not targets:
        return list(units.instances)
    services = {layout.split_instance(i)[0] for i in units.instances}
    unknown = [t for t in targets if t not in services and t not in units.instances]
    if unknown:
        raise error(
            f"no such service or instance in project '{units.project}': {', '.join(unknown)}",
            f"services: {', '.join(sorted(services)) or 'none installed'}",
        )
    wanted = set(targets)
    return [i for i in units.instances if i in wanted or layout.split_instance(i)[0] in wanted]
