"""What `up` shows while systemd starts a project: one line per unit it waits for.

An instance that runs while its service's health gate waits is booting (its console's
last line says how far); a gate shows its latest health attempt and result, read from
its journal (this start's only); units still starting say so. The lines themselves are
drawn by the caller's `Progress` (holosc.cli.live: updating lines on a terminal).
"""

from __future__ import annotations

import re
import time
from typing import Protocol

from holos_runtime import consolelog

from holosc.core import layout
from holosc.host import journal
from holosc.host.systemd import Manager

JOURNAL_EVERY = 1.0  # seconds between reads of a waiting gate's journal
_ATTEMPT = re.compile(r": attempt (\d+) at [\d.]+ s: (.*)")


class Progress(Protocol):
    def update(self, key: str, state: str, detail: str = "", *, news: bool = False) -> None: ...

    def end(self, key: str) -> None: ...


class Watch:
    """Turns the units' states, polled by `up`, into progress lines."""

    def __init__(self, manager: Manager, project: str, shown: Progress) -> None:
        self.manager = manager
        self.project = project
        self.shown = shown
        self.read: dict[str, float] = {}  # gate: when its journal was read last
        self.attempt: dict[str, tuple[str, str]] = {}  # gate: (attempt number, detail)

    def step(self, states: dict[str, str]) -> None:
        """`states`: {unit: ActiveState} of the units `up` watches."""
        waiting = {
            layout.gate_service(self.project, u)
            for u, state in states.items()
            if layout.is_gate(u) and state == "activating"
        }
        for unit, state in states.items():
            label = layout.unit_label(self.project, unit)
            instance = "@" in unit
            if layout.is_gate(unit) and state == "activating":
                detail, news = self._attempt(unit)
                self.shown.update(label, "waiting for health", detail, news=news)
            elif state == "activating":
                self.shown.update(label, "starting")
            elif instance and state == "active" and label.rsplit("-", 1)[0] in waiting:
                log = layout.console_log(self.manager.state_dir, self.project, label)
                self.shown.update(label, "booting", consolelog.last_line(log))
            else:
                self.shown.end(label)

    def _attempt(self, gate: str) -> tuple[str, bool]:
        """The gate's latest health attempt ("attempt 3: connection refused") and whether
        it is new since the last look."""
        number, detail = self.attempt.get(gate, ("", ""))
        if time.monotonic() - self.read.get(gate, 0) < JOURNAL_EVERY:
            return detail, False
        self.read[gate] = time.monotonic()
        for line in reversed(journal.this_start(self.manager, gate, 5)):
            if found := _ATTEMPT.search(line):
                if found[1] == number:
                    return detail, False
                self.attempt[gate] = (found[1], f"attempt {found[1]}: {found[2]}")
                return self.attempt[gate][1], True
        return detail, False
