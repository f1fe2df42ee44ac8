"""Compose's `${VAR}` interpolation of holos.yaml values (never keys), as compose-go's
template package has it (docs/format.md, "Interpolation").

`$$` is a literal `$`; `$NAME` and `${NAME}` take the variable's value ("" with a warning
when it is unset); `${NAME:-default}` (unset or empty), `${NAME-default}` (unset),
`${NAME:+alt}` (set and non-empty), `${NAME+alt}` (set), `${NAME:?message}` and
`${NAME?message}` (an error when unset, or unset or empty). Defaults, alternatives and
messages are themselves interpolated, so they nest, and a default may hold braces
(`${JSON:-{"a":1}}`): the value runs to its balanced `}`. A `$` that starts no variable
(`a $ b`, `$}`, `$1`) stays as written; `${` that starts no valid form (`${`, `${}`,
`${ A}`, `${A!}`) is an error. Names are `[_a-zA-Z][_a-zA-Z0-9]*`. A braced form with an
operator looks for its `}` on its own line only, as compose's pattern does.

This module is pure: the caller passes the variables (see holosc.load.environment).
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping
from typing import Any

from holosc.core.document import MAX_FILE_BYTES, Document, JsonPath, plain_scalar
from holosc.errors import Diagnostic, ValidationError

_NAME = re.compile(r"[_a-zA-Z][_a-zA-Z0-9]*")
# compose's `${name[key]...}` (named mappings): no mapping is defined, so it stays as written.
_MAPPING_TAIL = re.compile(r"\]:?[-+?}]")
# Variables named like these hold secrets, whose values would land in plaintext in the
# compiled output (user-data, seed.iso, units), which is world-readable and committed.
SECRET_NAME = re.compile(r"TOKEN|PASSWORD|PASSWD|SECRET|KEY|CREDENTIAL", re.IGNORECASE)
MAX_NESTING = 16  # ${A:-${B:-...}} levels
# Text that interpolation may produce in one document: like the file's own limit, so a
# variable repeated many times cannot grow the input (and so the output) without bound.
MAX_OUTPUT = MAX_FILE_BYTES


class InterpolationError(Exception):
    """A value that cannot be interpolated; its text is the user-facing message."""


def interpolate_document(doc: Document, environ: Mapping[str, str]) -> Document:
    """Interpolate every string value of `doc`.

    :raises ValidationError: for `${VAR:?message}` on an unset variable or bad syntax.
    """
    errors: list[Diagnostic] = []
    raw = dict(doc.raw)
    warnings: list[Diagnostic] = []
    seen: set[tuple[str, str]] = set()
    budget = Budget(MAX_OUTPUT)

    def walk(value: Any, path: JsonPath) -> Any:
        if isinstance(value, dict):
            return {k: walk(v, (*path, k)) for k, v in value.items()}
        if isinstance(value, list):
            return [walk(v, (*path, i)) for i, v in enumerate(value)]
        if isinstance(value, str) and "$" in value:
            trace = Trace()
            try:
                result = substitute(value, environ, trace, budget)
                raw[path] = result
                # Like compose, an unquoted `${MEMORY}` yields a number when it is one.
                return result if path in doc.quoted else plain_scalar(result)
            except InterpolationError as exc:
                errors.append(doc.diagnostic(path, str(exc), hint=_hint(exc)))
                return value
            finally:
                warnings.extend(trace.warnings(lambda m, h: _warn(doc, path, m, h), seen))
        return value

    data = walk(doc.data, ())
    if errors:
        raise ValidationError("interpolation failed", errors)
    return dataclasses.replace(doc, data=data, raw=raw, warnings=(*doc.warnings, *warnings))


def _warn(doc: Document, path: JsonPath, message: str, hint: str) -> Diagnostic:
    return doc.diagnostic(path, message, severity="warning", hint=hint)


def _hint(exc: InterpolationError) -> str | None:
    return "write $$ for a literal $" if str(exc).startswith("invalid") else None


@dataclasses.dataclass
class Trace:
    """What one substitution looked up: unset names (each is a warning) and names whose
    value reached the output (one that looks like a secret is a warning)."""

    unset: list[str] = dataclasses.field(default_factory=list)
    used: list[str] = dataclasses.field(default_factory=list)

    def warnings(self, make: Any, seen: set[tuple[str, str]]) -> list[Diagnostic]:
        """One diagnostic per name not in `seen` (which grows), made by `make(msg, hint)`."""
        result = []
        for name in self.used:
            if SECRET_NAME.search(name) and ("secret", name) not in seen:
                seen.add(("secret", name))
                result.append(
                    make(
                        f"variable {name} looks like a secret; its value is written in "
                        "plaintext into the compiled output (user-data, seed.iso)",
                        "the output directory is readable and often committed; pass "
                        "secrets to the guest another way",
                    )
                )
        for name in self.unset:
            if ("unset", name) not in seen:
                seen.add(("unset", name))
                result.append(
                    make(
                        f"variable {name} is not set; using an empty string",
                        f"set {name} or give a default: ${{{name}:-value}}",
                    )
                )
        return result


class Budget:
    """Characters interpolation may still produce in one document."""

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
    trace: Trace | None = None,
    budget: Budget | None = None,
) -> str:
    """Expand one string with the variables of `environ`.

    :raises InterpolationError: with a user-facing message.
    """
    state = _State(environ, trace or Trace(), budget or Budget(MAX_OUTPUT))
    return _expand(text, state, 0)


@dataclasses.dataclass
class _State:
    env: Mapping[str, str]
    trace: Trace
    budget: Budget


def _expand(text: str, state: _State, depth: int) -> str:
    if depth > MAX_NESTING:
        raise InterpolationError(f"interpolation nests deeper than {MAX_NESTING} levels")
    if "$" not in text:
        return text
    lines = _Lines(text)
    out: list[str] = []
    i = 0
    while (j := text.find("$", i)) >= 0:
        out.append(text[i:j])
        after = text[j + 1 : j + 2]
        if after == "$":
            out.append("$")
            i = j + 2
        elif m := _NAME.match(text, j + 1):
            out.append(state.budget.spend(_lookup(m[0], state)))
            i = m.end()
        elif after == "{":
            value, i = _braced(text, j, state, depth, lines)
            out.append(state.budget.spend(value))
        else:  # a `$` that starts nothing stays, as in compose
            out.append("$")
            i = j + 1
    out.append(text[i:])
    return "".join(out)


def _braced(text: str, start: int, state: _State, depth: int, lines: _Lines) -> tuple[str, int]:
    """The value of the `${...}` at `start` and the index after it."""
    m = _NAME.match(text, start + 2)
    if m and text.startswith("}", m.end()):
        return _lookup(m[0], state), m.end() + 1
    op = _operator(text, m.end()) if m else None
    last = lines.last_brace(start)
    if m and op and last >= m.end() + len(op):
        end = start + _closing(text, start, last) + 1
        arg = text[m.end() + len(op) : end - 1]
        return _apply(m[0], op, arg, state, depth), end
    if m and text.startswith("[", m.end()) and last > m.end():
        end = start + _closing(text, start, last) + 1
        if _is_mapping(text, m.end(), end - 1):
            return text[start:end], end  # compose keeps a named mapping it does not know
    raise InterpolationError(f"invalid interpolation format: {_snippet(text, start, lines)!r}")


def _operator(text: str, i: int) -> str | None:
    for op in (":?", ":-", ":+", "?", "-", "+"):
        if text.startswith(op, i):
            return op
    return None


def _closing(text: str, start: int, last: int) -> int:
    """compose-go's getFirstBraceClosingIndex over text[start:last+1], relative to
    `start`: the `}` that balances the braces opened so far (each `{` also skips the
    character after it, as compose's does), or, unbalanced, the last one."""
    depth = 0
    i = start
    while i <= last:
        c = text[i]
        if c == "}":
            depth -= 1
            if depth == 0:
                return i - start
        elif c == "{":
            depth += 1
            i += 1
        i += 1
    return last - start


def _apply(name: str, op: str, arg: str, state: _State, depth: int) -> str:
    """`${name<op>arg}`: the default, alternative or message is interpolated first, even
    when it is not used (compose-go does the same, errors included)."""
    expanded = _expand(arg, state, depth + 1)
    value = state.env.get(name)
    present = value is not None and (value != "" or not op.startswith(":"))
    if op.endswith("?"):
        if not present or value is None:
            reason = f": {expanded}" if expanded else ""
            raise InterpolationError(f"required variable {name} is missing a value{reason}")
        state.trace.used.append(name)
        return value
    if op.endswith("+"):
        return expanded if present else (value or "")
    if present and value is not None:
        state.trace.used.append(name)
        return value
    return expanded


def _is_mapping(text: str, bracket: int, brace: int) -> bool:
    """Whether `[...]` from `bracket` to the `}` at `brace` has the form of compose's named
    mapping `${name[key]}` (optionally followed by an operator and its argument)."""
    if text[brace - 1] == "]" and brace - 1 > bracket:
        return True
    return _MAPPING_TAIL.search(text, bracket + 1, brace) is not None


def _lookup(name: str, state: _State) -> str:
    value = state.env.get(name)
    if value is None:
        state.trace.unset.append(name)
        return ""
    state.trace.used.append(name)
    return value


def _snippet(text: str, start: int, lines: _Lines) -> str:
    end = min(lines.end(start), start + 40)
    return text[start:end]


class _Lines:
    """Per-line facts of one text, computed once per line: where it ends and its last `}`
    (compose's pattern does not cross lines)."""

    def __init__(self, text: str) -> None:
        self.text = text
        self._end = -1
        self._start = 0
        self._brace = -1

    def end(self, i: int) -> int:
        if not self._start <= i < self._end:
            self._start = self.text.rfind("\n", 0, i) + 1
            found = self.text.find("\n", i)
            self._end = len(self.text) if found < 0 else found
            self._brace = self.text.rfind("}", self._start, self._end)
        return self._end

    def last_brace(self, i: int) -> int:
        self.end(i)
        return self._brace
