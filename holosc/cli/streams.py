"""The commands' stdout and stderr: every write passes `terminal_safe`, by construction.

Most of what holosc prints quotes text it did not write: a guest's console and build
output, files in the output directory, holos.yaml values, lock files, the journal,
registries. Instead of trusting each print to escape, `install()` (run once by `main`)
wraps sys.stdout and sys.stderr so that whatever is printed, by holosc, click or a
helper running in this process, reaches the terminal through holos_runtime.terminal.

Two things are written past the wrapper, each by name:
- holosc's own control sequences (a coloured caret, a redrawn progress bar): `control`;
- data documents (YAML and JSON for programs): `document` writes them exactly when
  stdout is a file or a pipe, and escaped on a terminal. JSON is ASCII with its own
  escapes; YAML escapes C0 and C1 itself, so only a value holding a bidirectional
  control differs between the two.
The interactive serial console (`holosc console`) writes the guest's bytes to the file
descriptor on purpose: the user is talking to the guest's terminal, as with `virsh
console` or `ssh`.
"""

from __future__ import annotations

import sys
from typing import Any, TextIO

from holos_runtime.terminal import terminal_safe


class SafeText:
    """A text stream that writes `terminal_safe(text)` to the stream it wraps."""

    def __init__(self, raw: TextIO) -> None:
        self.raw = raw

    def write(self, text: str) -> int:
        self.raw.write(terminal_safe(text))
        return len(text)

    def writelines(self, lines: Any) -> None:
        for line in lines:
            self.write(line)

    def __getattr__(self, name: str) -> Any:  # flush, isatty, fileno, encoding...
        return getattr(self.raw, name)


def install() -> None:
    """Wrap sys.stdout and sys.stderr (once; a second call changes nothing)."""
    if not isinstance(sys.stdout, SafeText):
        sys.stdout = SafeText(sys.stdout)
    if not isinstance(sys.stderr, SafeText):
        sys.stderr = SafeText(sys.stderr)


def _raw(stream: TextIO) -> TextIO:
    return stream.raw if isinstance(stream, SafeText) else stream


def control(text: str, stream: TextIO | None = None) -> None:
    """Write holosc's own text with its control sequences (colour, `\\r\\033[K`) as they
    are; what it quotes must have passed `terminal_safe` already."""
    _raw(stream or sys.stderr).write(text)


def document(text: str) -> None:
    """A YAML or JSON document on stdout: exact for programs, escaped on a terminal."""
    if sys.stdout.isatty():
        sys.stdout.write(text)
    else:
        _raw(sys.stdout).write(text)
