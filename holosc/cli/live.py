"""Signs of life during long waits (a guest booting, health attempts, the builder's boot).

On a terminal: one updating line per unit below what was said, each with its state, the
seconds it has been in it and the latest detail (a health attempt's result, the guest
console's last line). Not on a terminal: a plain line for each piece of news (a health
attempt's result), and one every PLAIN_EVERY seconds while a unit waits (a CI log shows
the wait is alive, without a line per second); the caller says state changes itself.
With -q: nothing.

What a unit's detail quotes comes from a guest or the journal: it passes
`terminal_safe` (one line) before it is drawn, since the block is written past the
stream's own escaping (it moves the cursor).
"""

from __future__ import annotations

import contextlib
import shutil
import sys
import threading
import time
from collections.abc import Callable, Iterator
from typing import TextIO

from holos_runtime.terminal import terminal_safe

from holosc.cli import streams

PLAIN_EVERY = 30.0  # seconds between plain lines of a unit whose state stays


class Live:
    """The block of updating lines, and `say` for lines that stay above it."""

    def __init__(self, say: Callable[[str], None], stream: TextIO | None = None) -> None:
        from holosc.cli import common  # the -q flag, set by the CLI's callback

        self.stream = stream or sys.stderr
        self.plain_say = say
        self.quiet = common.quiet
        self.tty = self.stream.isatty() and not self.quiet
        self.units: dict[str, tuple[str, str, float]] = {}  # key: (state, detail, since)
        self.printed: dict[str, float] = {}  # key: when its last plain line was said
        self.drawn = 0  # lines of the block on the screen
        self.lock = threading.Lock()

    def say(self, line: str) -> None:
        """A line that stays: above the block, which is drawn again below it."""
        with self.lock:
            self._clear()
            self.plain_say(line)
            self._draw()

    def update(self, key: str, state: str, detail: str = "", *, news: bool = False) -> None:
        """`key` (a unit's label) is in `state`, the seconds counting from when it entered
        it; drawn at the next `tick`. Not on a terminal, `news` (a health attempt's result)
        is a line of its own at once; the rest, every PLAIN_EVERY seconds."""
        with self.lock:
            old = self.units.get(key)
            now = time.monotonic()
            since = old[2] if old and old[0] == state else now
            self.units[key] = (state, terminal_safe(detail, one_line=True), since)
            if not self.tty and not self.quiet:
                last = self.printed.setdefault(key, now)  # the state was said already
                if news or now - last >= PLAIN_EVERY:
                    self.printed[key] = now
                    self.plain_say(self._text(key))

    def tick(self) -> None:
        """Draw the block again on a terminal (the seconds go on); plain lines for the
        units unchanged for PLAIN_EVERY seconds."""
        with self.lock:
            if self.tty:
                self._clear()
                self._draw()
                return
            for key in list(self.units):
                if not self.quiet and time.monotonic() - self.printed.get(key, 0) >= PLAIN_EVERY:
                    self.printed[key] = time.monotonic()
                    self.plain_say(self._text(key))

    def end(self, key: str) -> None:
        """`key` is no longer waited for: its line goes."""
        with self.lock:
            if self.units.pop(key, None) is not None and self.tty:
                self._clear()
                self._draw()
            self.printed.pop(key, None)

    def close(self) -> None:
        with self.lock:
            self._clear()
            self.units.clear()
            self.printed.clear()

    def _text(self, key: str) -> str:
        state, detail, since = self.units[key]
        return f"{key}: {state}, {time.monotonic() - since:.0f} s" + (
            f": {detail}" if detail else ""
        )

    def _clear(self) -> None:
        if self.drawn:
            # Up to the block's first line, and clear from there to the end of the screen.
            streams.control(f"\033[{self.drawn}F\033[J", self.stream)
            self.drawn = 0

    def _draw(self) -> None:
        if not (self.tty and self.units):
            self.stream.flush()
            return
        width = max(shutil.get_terminal_size((80, 24)).columns - 1, 20)
        # A line wider than the terminal wraps and the cursor-up count would miss it.
        text = "".join(f"{self._text(k)[:width]}\n" for k in self.units)
        streams.control(text, self.stream)
        self.drawn = len(self.units)
        self.stream.flush()


@contextlib.contextmanager
def live(say: Callable[[str], None], every: float = 1.0) -> Iterator[Live]:
    """A Live whose block is drawn again every `every` seconds by a thread of its own
    (the waits it shows block the caller), and cleared at the end, whatever ends it."""
    shown = Live(say)
    stop = threading.Event()

    def tick() -> None:
        while not stop.wait(every):
            shown.tick()

    ticker = threading.Thread(target=tick, daemon=True)
    ticker.start()
    try:
        yield shown
    finally:
        stop.set()
        ticker.join()
        shown.close()


def status(shown: Live) -> Callable[[str, str, str], None]:
    """holos_runtime.bake's Status callback on `shown`: an empty state ends the line."""

    def update(what: str, state: str, detail: str) -> None:
        if state:
            shown.update(what, state, detail)
        else:
            shown.end(what)

    return update
