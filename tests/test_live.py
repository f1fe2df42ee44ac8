"""Signs of life (holosc/cli/live.py) on a real pseudo-terminal, on a pipe and with -q:
the block of updating lines, plain lines for news, nothing when quiet."""

from __future__ import annotations

import contextlib
import io
import os
import pty

import pytest

from holosc.cli import common, live


def test_on_a_terminal_the_lines_update_in_place(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(common, "quiet", False)
    leader, follower = pty.openpty()
    said: list[str] = []
    with open(follower, "w", closefd=True) as stream:
        shown = live.Live(said.append, stream)
        shown.update("db-healthy", "waiting for health", "attempt 1: refused\x1b[2J")
        shown.update("db-0", "booting", "[  OK  ] Started ssh")
        shown.tick()
        shown.say("db-0: running")  # above the block, which is drawn again below it
        shown.end("db-0")
        shown.close()
    chunks = []
    with contextlib.suppress(OSError):  # EIO once the terminal is drained
        while data := os.read(leader, 65536):
            chunks.append(data)
    os.close(leader)
    out = b"".join(chunks).decode()
    first = "db-healthy: waiting for health, 0 s: attempt 1: refused\\x1b[2J\r\n"
    assert out.startswith(first + "db-0: booting, 0 s: [  OK  ] Started ssh\r\n"), repr(out)
    # Up over the two lines, cleared, and drawn again: once by say, once by end.
    assert out.count("\x1b[2F\x1b[J") == 2 and out.endswith("\x1b[1F\x1b[J"), repr(out)
    assert said == ["db-0: running"]


def test_not_on_a_terminal_news_is_a_line_and_the_rest_waits(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(common, "quiet", False)
    said: list[str] = []
    shown = live.Live(said.append, io.StringIO())
    shown.update("db-healthy", "waiting for health", "attempt 1: refused", news=True)
    shown.update("db-0", "booting", "console line")  # no news: said after PLAIN_EVERY
    shown.tick()
    assert said == ["db-healthy: waiting for health, 0 s: attempt 1: refused"]
    monkeypatch.setattr(live, "PLAIN_EVERY", 0.0)
    shown.tick()
    assert said[-1] == "db-0: booting, 0 s: console line"


def test_quiet_shows_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(common, "quiet", True)
    said: list[str] = []
    stream = io.StringIO()
    shown = live.Live(said.append, stream)
    shown.update("db-healthy", "waiting for health", "attempt 1", news=True)
    shown.tick()
    shown.close()
    assert said == [] and stream.getvalue() == ""
