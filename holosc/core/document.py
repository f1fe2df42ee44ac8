"""The document the compiler reads: holos.yaml's values with a position for each.

A leaf module (the loader builds a Document; interpolation, validation and the exporters
read it), so that no stage imports another stage to know its input.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from holosc.errors import Diagnostic

MAX_FILE_BYTES = 4 * 1024 * 1024  # holos.yaml and every file it names, and what they expand to
JsonPath = tuple[str | int, ...]
# Used with fullmatch: `$` would also match before a final newline.
_INT = re.compile(r"[-+]?[0-9]+|0o[0-7]+|0x[0-9a-fA-F]+")
_FLOAT = re.compile(r"[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?")
_SPECIAL_FLOAT = re.compile(r"[-+]?\.(inf|Inf|INF)|\.(nan|NaN|NAN)")
_NULL = {"", "~", "null", "Null", "NULL"}
_BOOL = {"true": True, "True": True, "TRUE": True, "false": False, "False": False, "FALSE": False}


@dataclasses.dataclass(frozen=True, slots=True)
class Mark:
    line: int
    col: int


@dataclasses.dataclass(frozen=True)
class Document:
    """holos.yaml as values, with a mark for each value and key and raw scalar text."""

    file: str
    data: Any
    marks: Mapping[JsonPath, Mark]
    key_marks: Mapping[JsonPath, Mark]
    raw: Mapping[JsonPath, str]
    directory: Path
    warnings: tuple[Diagnostic, ...] = ()
    quoted: frozenset[JsonPath] = frozenset()
    # Values assembled from other files (include:, extends:) name their file by path
    # prefix; `sources` holds each file's lines, for diagnostics that show their line.
    origins: Mapping[JsonPath, str] = dataclasses.field(default_factory=dict)
    sources: Mapping[str, tuple[str, ...]] = dataclasses.field(default_factory=dict)
    sha256: str = ""  # of the main file's bytes as read once (the lock's `sources`)
    # The project's environment (holosc's own over the .env file's), which answers
    # `environment: [VAR]` and the lookups of env_file values, as compose's does.
    environ: Mapping[str, str] = dataclasses.field(default_factory=dict)

    def mark(self, path: JsonPath, *, key: bool = False) -> Mark | None:
        """The closest known position for `path`, walking up to a parent when needed."""
        if key and path in self.key_marks:
            return self.key_marks[path]
        while path not in self.marks and path:
            path = path[:-1]
        return self.marks.get(path)

    def diagnostic(
        self,
        path: JsonPath,
        message: str,
        *,
        hint: str | None = None,
        key: bool = False,
        severity: str = "error",
    ) -> Diagnostic:
        mark = self.mark(path, key=key)
        file = self.origin(path)
        return Diagnostic(
            message=message,
            file=file,
            line=mark.line if mark else None,
            col=mark.col if mark else None,
            path=format_path(path),
            hint=hint,
            severity=severity,
            source=source_line(self.sources.get(file, ()), mark.line) if mark else None,
        )

    def origin(self, path: JsonPath) -> str:
        """The file `path`'s value came from."""
        for n in range(len(path), 0, -1):
            if path[:n] in self.origins:
                return self.origins[path[:n]]
        return self.file


def source_line(lines: tuple[str, ...], line: int) -> str | None:
    return lines[line - 1] if 0 < line <= len(lines) else None


def format_path(path: JsonPath) -> str:
    """`services.web.ports[0]` for ("services", "web", "ports", 0)."""
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text


def plain_scalar(text: str) -> Any:
    """YAML 1.2 core schema typing of an untagged plain scalar."""
    if text in _NULL:
        return None
    if text in _BOOL:
        return _BOOL[text]
    if _INT.fullmatch(text):
        if len(text) > 4000:  # Python refuses to convert more digits; no field takes them
            return float("inf")
        return int(text, 0) if text.startswith(("0o", "0x")) else int(text)
    if _FLOAT.fullmatch(text) and any(c.isdigit() for c in text):
        return float(text)
    if _SPECIAL_FLOAT.fullmatch(text):
        return float(text.replace(".", "").lower().replace("inf", "inf"))
    return text
