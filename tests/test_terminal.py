"""The one function that decides what reaches a terminal (holos_runtime.terminal), and
the paths that print text holosc did not write through it."""

from __future__ import annotations

import pytest
from holos_runtime.terminal import terminal_safe


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        ("\x1b]0;owned\x07", "\\x1b]0;owned\\x07"),  # OSC: retitle
        ("\x1b]52;c;cm0gLXJmIH4=\x07", "\\x1b]52;c;cm0gLXJmIH4=\\x07"),  # OSC 52: clipboard
        ("\x1b[2J\x1b[H", "\\x1b[2J\\x1b[H"),  # clear screen, cursor home
        ("ok\rhidden", "ok\\rhidden"),  # a lone CR overwrites the line
        ("\x9b31m\x9d0;t\x9c\x90q\x85", "\\x9b31m\\x9d0;t\\x9c\\x90q\\x85"),  # C1 controls
        ("\x7f\x00\x08", "\\x7f\\x00\\x08"),  # DEL, NUL, backspace
        ("user\u202e\u2066txt.exe\u2069", "user\\u202e\\u2066txt.exe\\u2069"),  # bidi
        ("a\u2028b\u2029c", "a\\u2028b\\u2029c"),  # line and paragraph separators
        ("bad\udcff byte", "bad\\udcff byte"),  # undecodable byte (surrogateescape)
        ("boot\r\nok\tdone\n", "boot\nok\tdone\n"),  # CR LF is a line end; tab, LF stay
        ("café 日本 👩\u200d💻 naïve", "café 日本 👩\u200d💻 naïve"),  # text stays text
    ],
)
def test_terminal_safe_escapes_what_drives_or_deceives_a_terminal(text: str, shown: str) -> None:
    assert terminal_safe(text) == shown
    shown.encode("utf-8")  # printable on a UTF-8 terminal: no lone surrogate left


def test_one_line_text_cannot_forge_a_line() -> None:
    forged = "web\nholos.yaml:1:1: error: all good\tx\r\n"
    assert terminal_safe(forged, one_line=True) == ("web\\nholos.yaml:1:1: error: all good\\tx\\n")
