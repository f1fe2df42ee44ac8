"""What may reach a terminal: the one function that makes text holosc did not write safe
to print.

Text from a guest (its console, a build step's output, its stderr), from a file (a
planted output file, a lock, a Dockerfile, holos.yaml itself), from the environment, a
registry or systemd reaches the user's terminal only through `terminal_safe`. The runtime helpers
use it for what they quote into the journal, holosc for everything it prints. Standard
library only.

What it escapes, each as a visible backslash escape:
- C0 controls but tab and newline, DEL, and C1 controls (U+0080-U+009F): ESC and the
  8-bit CSI/OSC/DCS introducers are how text retitles, recolours, clears or rewrites a
  terminal, or writes to the clipboard (OSC 52); a lone CR moves back over what was
  printed;
- bidirectional formatting characters (U+061C, U+200E, U+200F, U+202A-U+202E,
  U+2066-U+2069): they drive no terminal but reorder how the rest of a line is shown
  (CVE-2021-42574, "Trojan Source"), so a quoted value could make a message read
  differently from what it says;
- line and paragraph separators (U+2028, U+2029): some readers break lines there;
- lone surrogates (U+D800-U+DFFF), which undecodable bytes become: printing them would
  raise UnicodeEncodeError.
Other format characters (zero-width joiners, soft hyphens) pass: scripts and emoji need
them, and they drive nothing.
"""

from __future__ import annotations

import re

# A CR LF pair is a line end (serial consoles write them); any other CR is escaped.
_UNSAFE = (
    "\x00-\x08\x0b-\x1f\x7f-\x9f"  # C0 but tab and LF, DEL, C1
    "\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069"  # bidirectional formatting
    "\u2028\u2029\ud800-\udfff"  # line and paragraph separators, lone surrogates
)
UNSAFE = re.compile(f"[{_UNSAFE}]")
_UNSAFE_ONE_LINE = re.compile(f"[\t\n{_UNSAFE}]")
_SHORT = {"\t": "\\t", "\n": "\\n", "\r": "\\r"}


def _escape(match: re.Match[str]) -> str:
    char = match[0]
    if char in _SHORT:
        return _SHORT[char]
    code = ord(char)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def terminal_safe(text: str, *, one_line: bool = False) -> str:
    """`text` with everything that could drive or deceive a terminal shown as an escape
    (`\\x1b`, `\\r`, `\\u202e`); tab and newline stay unless `one_line` (a value quoted in a
    one-line message must not forge a line). CR LF becomes LF."""
    pattern = _UNSAFE_ONE_LINE if one_line else UNSAFE
    return pattern.sub(_escape, text.replace("\r\n", "\n"))
