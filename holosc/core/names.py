"""The one check for names that become paths and unit names: a DNS label.

Project, service and instance names reach file paths (`%E/holos/<project>`, the state
directories, `rm -r` in `down` and `uninstall`) and unit names. Whatever their source
(holos.yaml, `-p` on the command line, an installed lock or manifest, a directory listing),
they pass `check` before any use, so `/some/dir`, `.`, `..`, `a/b` or `-x` can never
name a path or an option.
"""

from __future__ import annotations

import re

from holosc.errors import Diagnostic, ExitCode, HolosError

# \A…\Z, not ^…$: `$` also matches before a final newline.
LABEL = re.compile(r"\A[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\Z")
HINT = "1-63 characters of a-z, 0-9 and '-', starting and ending with a letter or digit"


class NameError_(HolosError):
    """A name that is not a DNS label (a usage error: nothing was touched)."""

    exit_code = ExitCode.USAGE


def is_label(value: object) -> bool:
    return isinstance(value, str) and LABEL.match(value) is not None


def check(kind: str, value: object, source: str = "holosc") -> str:
    """`value` when it is a DNS label.

    :raises NameError_: otherwise, naming `kind` ("project", "instance", ...) and `source`.
    """
    if is_label(value):
        assert isinstance(value, str)
        return value
    raise invalid(kind, value, source, "not a DNS label", HINT)


def invalid(kind: str, value: object, source: str, why: str, hint: str | None = None) -> NameError_:
    message = f"invalid {kind} name {value!r}: {why}"
    return NameError_(message, [Diagnostic(message, file=source, hint=hint)])


def check_instance(value: object, source: str = "holosc") -> str:
    """An instance name: a label ending in `-<replica index>`."""
    name = check("instance", value, source)
    service, _, index = name.rpartition("-")
    if not service or not index.isdigit():
        raise invalid("instance", name, source, "expected <service>-<index>, e.g. web-0")
    return name
