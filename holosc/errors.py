"""Diagnostics, the exception tree and exit codes of holosc.

Library code never exits and never prints: it raises one of these, and the CLI turns
them into messages and an exit code at the edge.

    HolosError                 root; carries zero or more Diagnostics
     ├── LoadError             the file cannot be read or is not valid YAML
     ├── ValidationError       holos.yaml is well-formed but wrong (all errors at once)
     ├── EmitError             the output directory could not be written
     ├── RuntimeCommandError   a lifecycle command failed (systemd, ssh, ...)
     └── ImageError            a registry image could not be pulled (HTTP, checksum, disk)
          └── UnknownImageError  no registry entry has that name or tag
"""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Iterable

from holos_runtime.terminal import terminal_safe


class ExitCode(enum.IntEnum):
    """Exit codes of every holosc command: the one table, shown by `holosc --help` and
    copied into the README (tests/test_cli.py compares both with this enum)."""

    OK = 0, "ok"
    DRIFT = 1, "`build --check` found drift, or a lifecycle command failed"
    USAGE = 2, "usage error (bad option or argument, unknown image)"
    INVALID = 3, "invalid input (holos.yaml, or the domain XML of `import`)"
    OUTPUT = 4, "output directory not writable"
    RUNTIME = 5, "runtime error (systemd, ssh, ssh-keygen, QEMU, virsh, a download)"
    INTERNAL = 70, "internal error (a bug: please report it)"
    INTERRUPTED = 130, "interrupted (Ctrl-C)"

    description: str

    def __new__(cls, value: int, description: str) -> ExitCode:
        member = int.__new__(cls, value)
        member._value_ = value
        member.description = description
        return member

    @classmethod
    def table(cls) -> str:
        """One line for all codes: `0 ok · 1 ... · 130 interrupted (Ctrl-C)`."""
        return " · ".join(f"{code.value} {code.description}" for code in cls)


@dataclasses.dataclass(frozen=True, slots=True)
class Diagnostic:
    """One message about the input, positioned in a file when possible."""

    message: str
    file: str = "holos.yaml"
    line: int | None = None
    col: int | None = None
    path: str = ""
    hint: str | None = None
    severity: str = "error"
    source: str | None = None  # the text of `line`, for the caret display (not in __str__)
    # A file the units read at start is missing: a warning for validate and build (the
    # output may run on another host), an error for `up` on this one.
    missing_file: bool = False

    def sort_key(self) -> tuple[str, int, int, str, str]:
        return (self.file, self.line or 0, self.col or 0, self.path, self.message)

    def __str__(self) -> str:
        where = terminal_safe(self.file, one_line=True)
        if self.line is not None:
            where += f":{self.line}"
            if self.col is not None:
                where += f":{self.col}"
        # A positioned diagnostic is one line, whatever values it quotes; others (a
        # failed unit with its journal tail) may span lines.
        one_line = self.line is not None
        text = f"{where}: {self.severity}: "
        if self.path:
            text += f"{terminal_safe(self.path, one_line=True)}: "
        text += terminal_safe(self.message, one_line=one_line)
        if self.hint:
            text += f" (hint: {terminal_safe(self.hint, one_line=one_line)})"
        return text

    def snippet(self) -> str | None:
        """The source line with a caret under the column, as rustc and Elm show it."""
        if self.source is None or self.line is None:
            return None
        gutter = f"{self.line} | "
        col = max(1, self.col or 1)
        # The line is the file's text, shown escaped; the caret goes under the escaped
        # column, and tabs before it stay tabs in the indent.
        before = terminal_safe(self.source[: col - 1])
        indent = "".join(c if c == "\t" else " " for c in before)
        line = terminal_safe(self.source)
        return f"{gutter}{line}\n{' ' * (len(gutter) - 2)}| {indent}^"


class HolosError(Exception):
    """Root of every error holosc raises on purpose."""

    exit_code = ExitCode.INVALID

    def __init__(self, message: str, diagnostics: Iterable[Diagnostic] = ()) -> None:
        super().__init__(message)
        self.message = message
        self.diagnostics = tuple(sorted(diagnostics, key=Diagnostic.sort_key))

    def __str__(self) -> str:
        return self.message


class LoadError(HolosError):
    """The file is missing, unreadable, too large, or not valid YAML."""


class ValidationError(HolosError):
    """The project is invalid; `diagnostics` holds every error found."""


class EmitError(HolosError):
    """The output directory could not be written; the previous output is untouched."""

    exit_code = ExitCode.OUTPUT


class RuntimeCommandError(HolosError):
    """A lifecycle command (up, down, exec, ...) failed."""

    exit_code = ExitCode.RUNTIME


class ImageError(HolosError):
    """A registry image could not be downloaded or verified; nothing partial was cached."""

    exit_code = ExitCode.RUNTIME


class UnknownImageError(ImageError):
    """An image reference names no registry entry (a usage error on the command line)."""

    exit_code = ExitCode.USAGE


class BuildFailedError(RuntimeCommandError):
    """A step of a Dockerfile build failed (its output was shown); the cache keeps the
    layers of the steps before it."""

    exit_code = ExitCode.DRIFT


class UnitFailedError(RuntimeCommandError):
    """systemd ran the request but a unit failed or a health gate did not pass."""

    exit_code = ExitCode.DRIFT
