"""`holosc doctor`: check that this host can run what holosc compiles."""

from __future__ import annotations

import json
from typing import Annotated

import typer

from holosc.cli import options
from holosc.errors import ExitCode
from holosc.tools import doctor as D


def doctor(
    *,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print a JSON list of {name, status, detail, hint}.")
    ] = False,
    user: options.UserOption = False,
    system: options.SystemOption = False,
) -> None:
    """Check the host: KVM (or the TCG fallback), QEMU, qemu-img, ssh, OVMF, virtiofsd,
    systemd, the runtime helpers in systemd's search path, the state directory and IOMMU.

    One line per check (ok, warn or fail) and a verdict; exit 1 when a required check fails.
    """
    scope = options.manager(user, system).scope
    checks = D.run_checks(scope)
    if as_json:
        print(json.dumps([c.to_json() for c in checks], indent=2, sort_keys=True))
    else:
        width = max(len(c.name) for c in checks)
        for check in checks:
            line = f"{check.status:<4}  {check.name:<{width}}  {check.detail}"
            print(line + (f" (hint: {check.hint})" if check.hint else ""))
        print(f"verdict: {D.verdict(checks)}")
    if any(c.status is D.Status.FAIL for c in checks):
        raise typer.Exit(int(ExitCode.DRIFT))
