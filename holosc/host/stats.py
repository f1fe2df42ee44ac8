"""`holosc stats`: what each running instance costs the host, as `docker stats` shows it.

- CPU: systemd's CPUUsageNSec of the instance's unit (its cgroup: QEMU and its helpers);
  where the manager keeps no CPU accounting (cgroup v1 without CPUAccounting=), QEMU's
  own user and system time from /proc. The percentage is of one host CPU, over the
  interval between two samples (a guest with 4 busy vCPUs shows about 400 %).
- Memory: MemoryCurrent of the unit's cgroup (what the host pays: the guest RAM QEMU has
  touched, QEMU itself, its page cache), else QEMU's resident set; the limit is the
  guest's RAM as QEMU reports it (query-memory-size-summary).
- Block I/O: bytes read and written by the guest's disks (QMP query-blockstats).
- Net I/O: bytes the project's switch received from and sent to the instance's NICs
  (its project networks and its NAT NIC) since the switch started, from the switch's
  counters file (runtime-helpers/switch.py): every guest NIC is a datagram socket to the
  switch, and QEMU keeps no counters for them. "-" while the switch has written none.
"""

from __future__ import annotations

import dataclasses
import json
import os
import time
from pathlib import Path

from holosc.core import layout
from holosc.host import qmp
from holosc.host.lifecycle import Units
from holosc.host.systemd import Manager

PROPS = ("ActiveState", "MainPID", "CPUUsageNSec", "MemoryCurrent")
UNSET = 2**64 - 1  # systemd's "[not set]" when asked for a number


@dataclasses.dataclass(frozen=True)
class Sample:
    instance: str
    at: float  # time.monotonic()
    cpu_ns: int | None
    memory: int | None
    memory_limit: int | None
    block_read: int | None
    block_written: int | None
    net_rx: int | None = None
    net_tx: int | None = None


@dataclasses.dataclass(frozen=True)
class Row:
    """One line of `holosc stats` (what --json prints)."""

    name: str
    cpu_percent: float | None
    mem_usage: int | None
    mem_limit: int | None
    mem_percent: float | None
    net_rx: int | None
    net_tx: int | None
    block_read: int | None
    block_written: int | None


def sample(manager: Manager, units: Units, instances: list[str]) -> dict[str, Sample]:
    """One sample of each running instance (stopped ones are left out)."""
    shown = manager.show(units.instance_units(instances), PROPS)
    traffic = network_bytes(layout.switch_sockets(manager.runtime_dir, units.project))
    found = {}
    for inst in instances:
        props = shown[units.unit(inst)]
        pid = int(props.get("MainPID") or 0)
        if props.get("ActiveState") != "active" or not pid:
            continue
        limit, read, written = _qmp_figures(
            layout.qmp_socket(manager.runtime_dir, units.project, inst)
        )
        found[inst] = Sample(
            inst,
            time.monotonic(),
            _number(props.get("CPUUsageNSec")) or _proc_cpu_ns(pid),
            _number(props.get("MemoryCurrent")) or _proc_rss(pid),
            limit,
            read,
            written,
            *traffic.get(inst, (None, None)),
        )
    return found


def network_bytes(sockets: Path) -> dict[str, tuple[int, int]]:
    """(received, sent) bytes of each instance's guest NICs, from the switch's counters:
    what the switch sent to a NIC the guest received, and the reverse. A NAT NIC's slirp
    end (`slirp.sock`) is the host side of the same traffic, so it is left out."""
    try:
        counters = json.loads((sockets / "counters.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    totals: dict[str, list[int]] = {}
    for column, kind in ((0, "sent"), (1, "received")):
        by_socket = counters.get(kind) if isinstance(counters, dict) else None
        for name, count in (by_socket if isinstance(by_socket, dict) else {}).items():
            parts = name.split("/")
            if len(parts) != 3 or parts[0] != ".." or parts[2] == "slirp.sock":
                continue
            if isinstance(count, int) and not isinstance(count, bool):
                totals.setdefault(parts[1], [0, 0])[column] += count
    return {inst: (rx, tx) for inst, (rx, tx) in totals.items()}


def rows(before: dict[str, Sample], after: dict[str, Sample]) -> list[Row]:
    """The rows from two samples (CPU % needs both; the rest is `after`'s)."""
    result = []
    for inst, now in after.items():
        then = before.get(inst)
        cpu = None
        if then and now.cpu_ns is not None and then.cpu_ns is not None and now.at > then.at:
            cpu = max(0.0, (now.cpu_ns - then.cpu_ns) / ((now.at - then.at) * 1e9) * 100)
        mem_percent = (
            now.memory / now.memory_limit * 100 if now.memory and now.memory_limit else None
        )
        result.append(
            Row(
                inst,
                cpu,
                now.memory,
                now.memory_limit,
                mem_percent,
                now.net_rx,
                now.net_tx,
                now.block_read,
                now.block_written,
            )
        )
    return result


def _number(value: str | None) -> int | None:
    if value is None or not value.isdigit() or int(value) == UNSET:
        return None
    return int(value)


def _qmp_figures(path: Path) -> tuple[int | None, int | None, int | None]:
    """(guest RAM, bytes read, bytes written) from QEMU, or Nones when it does not answer
    (another client, a stop in progress, holds the one QMP connection)."""
    try:
        with qmp.session(path, timeout=2.0) as session:
            memory = session.execute("query-memory-size-summary")
            blocks = session.execute("query-blockstats")
    except qmp.QmpError:
        return None, None, None
    read = sum(int(b.get("stats", {}).get("rd_bytes", 0)) for b in blocks)
    written = sum(int(b.get("stats", {}).get("wr_bytes", 0)) for b in blocks)
    base = memory.get("base-memory") if isinstance(memory, dict) else None
    return (int(base) if isinstance(base, int) else None), read, written


def _proc_cpu_ns(pid: int) -> int | None:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    ticks = int(fields[11]) + int(fields[12])  # utime, stime (fields 14 and 15)
    return ticks * 1_000_000_000 // os.sysconf("SC_CLK_TCK")


def _proc_rss(pid: int) -> int | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def human(count: int | None, binary: bool = True) -> str:
    """Sizes as docker stats prints them: MiB/GiB for memory, kB/MB for I/O."""
    if count is None:
        return "-"
    base, units = (1024, ("B", "KiB", "MiB", "GiB", "TiB")) if binary else (
        1000, ("B", "kB", "MB", "GB", "TB"))  # fmt: skip
    value = float(count)
    for unit in units:
        if value < base or unit == units[-1]:
            return f"{value:.0f}{unit}" if unit == "B" else f"{value:.2f}{unit}"
        value /= base
    raise AssertionError("unreachable")
