"""A unit's journal from its last start only: what `up` and `start` show when it failed.

`journalctl -u UNIT -n 15` ends with whatever the unit said last, also in an earlier
run: a port clash from an hour ago reads like today's cause. systemd gives each start of
a unit an invocation ID (the `InvocationID` property); the unit's own processes log with
`_SYSTEMD_INVOCATION_ID`, the manager's lines about it with `INVOCATION_ID` (system) or
`USER_INVOCATION_ID` (user manager). journalctl of systemd 252 has no `--invocation`, so
the unit's recent entries are read as JSON and kept when one of those names this start
(an entry without any, when it came after the start: monotonic time, this boot).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from holosc.host import run
from holosc.host.systemd import Manager

FIELDS = ("_SYSTEMD_INVOCATION_ID", "INVOCATION_ID", "USER_INVOCATION_ID")
SCAN = 400  # the unit's last entries searched for this start's (a crash loop logs a lot)


def this_start(manager: Manager, unit: str, lines: int) -> list[str]:
    """The last `lines` messages of `unit`'s current (or last) start; [] when it never
    started under this manager or the journal cannot be read."""
    props = manager.show([unit], ["InvocationID", "InactiveExitTimestampMonotonic"])[unit]
    invocation = props.get("InvocationID", "")
    if not invocation:
        return []
    argv = [
        *manager.journal([unit], lines=SCAN),
        "-o",
        "json",
        f"--output-fields=MESSAGE,_BOOT_ID,{','.join(FIELDS)}",
    ]
    since = int(props.get("InactiveExitTimestampMonotonic") or 0)
    boot = _boot_id()
    found = []
    for line in run.output(argv).splitlines():
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        if isinstance(entry, dict) and _of_this_start(entry, invocation, since, boot):
            found.append(_message(entry.get("MESSAGE")))
    return found[-lines:]


def _of_this_start(entry: dict[str, Any], invocation: str, since: int, boot: str) -> bool:
    """An entry naming this invocation; one that names none (a journald that cannot read
    a user unit's invocation) counts when it came after the start, in this boot."""
    named = [entry[f] for f in FIELDS if f in entry]
    if named:
        return invocation in named
    try:
        after = int(entry.get("__MONOTONIC_TIMESTAMP", -1)) >= since
    except (TypeError, ValueError):
        return False
    return after and entry.get("_BOOT_ID") == boot


def _boot_id() -> str:
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip().replace("-", "")
    except OSError:
        return ""


def _message(value: Any) -> str:
    """journalctl writes a message that is not UTF-8 as a list of byte values."""
    if isinstance(value, list) and all(isinstance(b, int) and 0 <= b < 256 for b in value):
        return bytes(value).decode(errors="replace")
    return value if isinstance(value, str) else ""
