"""Compose-style `${VAR}` interpolation of holos.yaml values (never keys).

Forms: `$VAR`, `${VAR}`, `${VAR:-default}` (unset or empty), `${VAR-default}` (unset),
`${VAR:?message}`, `${VAR?message}`, `${VAR:+alt}`, `${VAR+alt}`, nested defaults, and
`$$` for a literal `$`. An unset variable without a default becomes "" with a warning,
as in docker compose. Runs after anchors and merge keys are resolved.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping
from typing import Any

from holosc.core.document import Document, JsonPath, plain_scalar
from holosc.errors import Diagnostic, ValidationError

_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


class InterpolationError(Exception):
    pass


def interpolate_document(doc: Document, environ: Mapping[str, str]) -> Document:
    """Interpolate every string value of `doc`.

    :raises ValidationError: for `${VAR:?message}` on an unset variable or bad syntax.
    """
    errors: list[Diagnostic] = []
    raw = dict(doc.raw)
    warnings: list[Diagnostic] = []
    seen_unset: set[str] = set()

    def walk(value: Any, path: JsonPath) -> Any:
        if isinstance(value, dict):
            return {k: walk(v, (*path, k)) for k, v in value.items()}
        if isinstance(value, list):
            return [walk(v, (*path, i)) for i, v in enumerate(value)]
        if isinstance(value, str) and "$" in value:
            unset: list[str] = []
            try:
                result = substitute(value, environ, unset)
                raw[path] = result
                # Like compose, an unquoted `${MEMORY}` yields a number when it is one.
                return result if path in doc.quoted else plain_scalar(result)
            except InterpolationError as exc:
                errors.append(doc.diagnostic(path, str(exc)))
                return value
            finally:
                for name in unset:
                    if name not in seen_unset:
                        seen_unset.add(name)
                        warnings.append(
                            doc.diagnostic(
                                path,
                                f"variable {name} is not set; using an empty string",
                                severity="warning",
                                hint=f"set {name} or give a default: ${{{name}:-value}}",
                            )
                        )
        return value

    data = walk(doc.data, ())
    if errors:
        raise ValidationError("interpolation failed", errors)
    return dataclasses.replace(doc, data=data, raw=raw, warnings=(*doc.warnings, *warnings))


def substitute(text: str, environ: Mapping[str, str], unset: list[str] | None = None) -> str:
    """Expand one string. Raises InterpolationError with a user-facing message."""
    out, _ = _expand(text, 0, environ, unset if unset is not None else [], top=True)
    return out


def _expand(
    text: str, i: int, env: Mapping[str, str], unset: list[str], *, top: bool
) -> tuple[str, int]:
    out: list[str] = []
    while i < len(text):
        c = text[i]
        if not top and c == "}":
            return "".join(out), i
        if c != "$":
            out.append(c)
            i += 1
            continue
        nxt = text[i + 1 : i + 2]
        if nxt == "$":
            out.append("$")
            i += 2
        elif nxt == "{":
            value, i = _braced(text, i + 2, env, unset)
            out.append(value)
        elif m := _NAME.match(text, i + 1):
            out.append(_lookup(m[0], env, unset))
            i = m.end()
        else:
            raise InterpolationError(
                f"invalid interpolation at '{text[i : i + 10]}': use $$ for a literal $"
            )
    if not top:
        raise InterpolationError("unterminated '${' in interpolation")
    return "".join(out), i


def _braced(text: str, i: int, env: Mapping[str, str], unset: list[str]) -> tuple[str, int]:
    m = _NAME.match(text, i)
    if not m:
        raise InterpolationError(f"invalid variable name in '${{{text[i : i + 10]}'")
    name, i = m[0], m.end()
    if text[i : i + 1] == "}":
        return _lookup(name, env, unset), i + 1
    for op in (":-", ":?", ":+", "-", "?", "+"):
        if text.startswith(op, i):
            break
    else:
        raise InterpolationError(f"invalid interpolation '${{{name}{text[i : i + 5]}'")
    arg, end = _expand(text, i + len(op), env, [], top=False)
    value = env.get(name)
    present = value is not None and (value != "" or ":" not in op)
    result: str
    if op.endswith("-"):
        result = value if present and value is not None else arg
    elif op.endswith("+"):
        result = arg if present else ""
    else:
        if not present or value is None:
            raise InterpolationError(arg or f"required variable {name} is missing a value")
        result = value
    return result, end + 1


def _lookup(name: str, env: Mapping[str, str], unset: list[str]) -> str:
    if name not in env:
        unset.append(name)
        return ""
    return env[name]
