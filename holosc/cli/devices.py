"""`holosc devices`: the host's PCI devices, their drivers and IOMMU groups, for `devices:`."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Annotated

import typer

from holosc.tools import devices as D


def devices(
    *,
    gpu: Annotated[
        bool,
        typer.Option(
            "--gpu", help="Only display controllers (class 03xx) and their IOMMU group members."
        ),
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """List PCI devices for passthrough: ids and names, driver, IOMMU group and its members.

    A device is flagged unless it is bound to vfio-pci. Names come from pci.ids
    (/usr/share/misc/pci.ids or /usr/share/hwdata/pci.ids) when installed. Set
    HOLOSC_SYSFS_ROOT to inspect another sysfs tree (default /sys).
    """
    root = Path(os.environ.get("HOLOSC_SYSFS_ROOT") or "/sys")
    inventory = D.scan(root, D.load_pci_ids())
    shown = D.gpu_devices(inventory) if gpu else inventory.devices
    if as_json:
        data = {
            "sysfs_root": str(root),
            "iommu_enabled": inventory.iommu_enabled,
            "devices": [d.to_json() for d in shown],
        }
        print(json.dumps(data, indent=2, sort_keys=True))
    elif shown:
        sys.stdout.write(D.render_text(shown))
    else:
        print("no GPUs found" if gpu else "no PCI devices found", file=sys.stderr)
    if not inventory.iommu_enabled and not as_json:
        print(
            f"warning: IOMMU is off ({root}/kernel/iommu_groups is empty), so no device "
            f"can be passed through: {D.IOMMU_HINT}",
            file=sys.stderr,
        )
