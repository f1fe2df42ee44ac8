"""What every check of holos.yaml shares: the collector of diagnostics and the name rules."""

from __future__ import annotations

import dataclasses
import re
from typing import Any

from holosc.core import names
from holosc.core.document import Document, JsonPath
from holosc.errors import Diagnostic

NAME = names.LABEL
# \Z, not $: `$` also matches before a final newline, and "demo\n" is no name.
USER = re.compile(r"^[a-z_][a-z0-9_-]{0,31}\Z")
ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
PROFILE = re.compile(r"[a-zA-Z0-9][a-zA-Z0-9_.-]*")
PERMISSIONS = re.compile(r"^[0-7]{3,4}\Z")
MAX_INSTANCES = 253
FALLBACK_USER = "ubuntu"
UNREADABLE = "\0unreadable Dockerfile"


class Checker:
    """Collects diagnostics against one Document."""

    def __init__(self, doc: Document) -> None:
        self.doc = doc
        self.errors: list[Diagnostic] = []
        self.warnings: list[Diagnostic] = list(doc.warnings)

    def error(
        self, path: JsonPath, message: str, hint: str | None = None, *, key: bool = False
    ) -> None:
        self.errors.append(self.doc.diagnostic(path, message, hint=hint, key=key))

    def warn(self, path: JsonPath, message: str, hint: str | None = None) -> None:
        self.warnings.append(self.doc.diagnostic(path, message, hint=hint, severity="warning"))

    def missing_file(self, path: JsonPath, message: str, hint: str) -> None:
        """A file the units read at start is missing (validate/hostfiles.py)."""
        found = self.doc.diagnostic(path, message, hint=hint, severity="warning")
        self.warnings.append(dataclasses.replace(found, missing_file=True))

    def parse(self, path: JsonPath, parser: Any, value: Any, default: Any = None) -> Any:
        """`parser(value)`, recording its ValueError at `path`."""
        try:
            return parser(value)
        except ValueError as exc:
            self.error(path, str(exc))
            return default
