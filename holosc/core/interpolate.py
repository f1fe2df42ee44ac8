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

from holosc.core.document import MAX_FILE_BYTES, Document, JsonPath, plain_scalar
from holosc.errors import Diagnostic, ValidationError

_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
# Variables named like these hold secrets, whose values would land in plaintext in the
# compiled output (user-data, seed.iso, units), which is world-readable and committed.
SECRET_NAME = re.compile(r"TOKEN|PASSWORD|PASSWD|SECRET|KEY|CREDENTIAL", re.IGNORECASE)
MAX_NESTING = 16  # ${A:-${B:-...}} levels
# Text that interpolation may produce in one document: like the file's own limit, so a
# variable repeated many times cannot grow the input (and so the output) without bound.
MAX_OUTPUT = MAX_FILE_BYTES


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
    seen_secret: set[str] = set()
    budget = _Budget(MAX_OUTPUT)

    def walk(value: Any, path: JsonPath) -> Any:
        if isinstance(value, dict):
            return {k: walk(v, (*path, k)) for k, v in value.items()}
        if isinstance(value, list):
            return [walk(v, (*path, i)) for i, v in enumerate(value)]
        if isinstance(value, str) and "$" in value:
            unset: list[str] = []
            used: list[str] = []
            try:
                result = substitute(value, environ, unset, budget, used)
                raw[path] = result
                # Like compose, an unquoted `${MEMORY}` yields a number when it is one.
                return result if path in doc.quoted else plain_scalar(result)
            except InterpolationError as exc:
                errors.append(doc.diagnostic(path, str(exc)))
                return value
            finally:
                for name in used:
                    if SECRET_NAME.search(name) and name not in seen_secret:
                        seen_secret.add(name)
                        warnings.append(
                            doc.diagnostic(
                                path,
                                f"variable {name} looks like a secret; its value is written "
                                "in plaintext into the compiled output (user-data, seed.iso)",
                                severity="warning",
                                hint="the output directory is readable and often committed; "
                                "pass secrets to the guest another way",
                            )
                        )
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


class _Budget:
    """Characters interpolation may still produce in this document."""

    def __init__(self, left: int) -> None:
        self.left = left

    def spend(self, text: str) -> str:
        self.left -= len(text)
        if self.left < 0:
            raise InterpolationError(
                f"interpolated values add up to more than {MAX_OUTPUT} characters"
            )
        return text


def substitute(
    text: str,
    environ: Mapping[str, str],
    unset: list[str] | None = None,
    budget: _Budget | None = None,
    used: list[str] | None = None,
) -> str:
    """Expand one string; `used` collects the variables whose values were substituted.
    Raises InterpolationError with a user-facing message."""
    state = _State(
        environ,
        unset if unset is not None else [],
        budget or _Budget(MAX_OUTPUT),
        used if used is not None else [],
    )
    out, _ = _expand(text, 0, state, depth=0)
    return out


@dataclasses.dataclass
class _State:
    env: Mapping[str, str]
    unset: list[str]
    budget: _Budget
    used: list[str]


def _expand(text: str, i: int, state: _State, *, depth: int) -> tuple[str, int]:
    """Expand from `i` to the end (depth 0) or to the `}` closing a default (depth > 0)."""
    if depth > MAX_NESTING:
        raise InterpolationError(f"interpolation nests deeper than {MAX_NESTING} levels")
    top = depth == 0
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
            value, i = _braced(text, i + 2, state, depth)
            out.append(state.budget.spend(value))
        elif m := _NAME.match(text, i + 1):
            out.append(state.budget.spend(_lookup(m[0], state)))
            i = m.end()
        else:
            raise InterpolationError(
                f"invalid interpolation at '{text[i : i + 10]}': use $$ for a literal $"
            )
    if not top:
        raise InterpolationError("unterminated '${' in interpolation")
    return "".join(out), i


def _braced(text: str, i: int, state: _State, depth: int) -> tuple[str, int]:
    env = state.env
    m = _NAME.match(text, i)
    if not m:
        raise InterpolationError(f"invalid variable name in '${{{text[i : i + 10]}'")
    name, i = m[0], m.end()
    if text[i : i + 1] == "}":
        return _lookup(name, state), i + 1
    for op in (":-", ":?", ":+", "-", "?", "+"):
        if text.startswith(op, i):
            break
    else:
        raise InterpolationError(f"invalid interpolation '${{{name}{text[i : i + 5]}'")
    arg, end = _expand(
        text, i + len(op), _State(env, [], state.budget, state.used), depth=depth + 1
    )
    value = env.get(name)
    present = value is not None and (value != "" or ":" not in op)
    result: str
    if present and not op.endswith("+"):  # the value itself lands in the output
        state.used.append(name)
    if op.endswith("-"):
        result = value if present and value is not None else arg
    elif op.endswith("+"):
        result = arg if present else ""
    else:
        if not present or value is None:
            raise InterpolationError(arg or f"required variable {name} is missing a value")
        result = value
    return result, end + 1


def _lookup(name: str, state: _State) -> str:
    if name not in state.env:
        state.unset.append(name)
        return ""
    state.used.append(name)
    return state.env[name]
