"""JSON that people edit or commit (holos.lock.json, holos-export.lock): parsed into plain
values or refused with JSONTextError (a ValueError with a line and column), never another
exception.

Python's json accepts NaN and Infinity (which no int() takes), turns 1e400 into an
infinite float, and raises RecursionError, not ValueError, on deep nesting.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

MAX_DEPTH = 64  # as holos.yaml (holosc.load.parse): a lock nests four levels

_BARE = re.compile(r"-?(?:Infinity|NaN|\d+(?:\.\d+)?(?:[eE][+-]?\d+)?)")


class JSONTextError(ValueError):
    """Text that is not JSON holosc reads: `reason` at `line`:`col` (1-based)."""

    def __init__(self, reason: str, line: int, col: int) -> None:
        super().__init__(f"line {line} column {col}: {reason}")
        self.reason, self.line, self.col = reason, line, col


def loads(data: str | bytes) -> Any:
    """The value of JSON text `data`.

    :raises JSONTextError: when it is not JSON, holds NaN or an infinite number, or
        nests deeper than MAX_DEPTH.
    """
    text = data.decode("utf-8", errors="replace") if isinstance(data, bytes) else data
    try:
        value = json.loads(text, parse_constant=_refuse, parse_float=_finite)
    except json.JSONDecodeError as exc:
        raise JSONTextError(exc.msg, exc.lineno, exc.colno) from None
    except (ValueError, RecursionError):
        raise _first_refusal(text) from None
    if _too_deep(value):  # json nested deeper than MAX_DEPTH without recursing out
        raise _first_refusal(text) from None
    return value


def _refuse(word: str) -> Any:
    raise ValueError(f"{word} is not a JSON number")


def _finite(text: str) -> float:
    number = float(text)
    if not math.isfinite(number):
        raise ValueError(f"{text} is too large a number")
    return number


def _too_deep(value: Any) -> bool:
    level = [value]
    for _ in range(MAX_DEPTH):
        level = [
            child
            for item in level
            if isinstance(item, dict | list)
            for child in (item.values() if isinstance(item, dict) else item)
        ]
        if not level:
            return False
    return True


def _first_refusal(text: str) -> JSONTextError:
    """Where `text`, which json parsed or almost, breaks a rule of `loads`: the first
    bracket past MAX_DEPTH, or the first bare NaN, Infinity or infinite number (strings
    are skipped)."""
    depth, i = 0, 0
    while i < len(text):
        char = text[i]
        if char == '"':
            i += 1
            while i < len(text) and text[i] != '"':
                i += 2 if text[i] == "\\" else 1
        elif char in "[{":
            depth += 1
            if depth > MAX_DEPTH:
                return _at(text, i, f"JSON nests deeper than {MAX_DEPTH} levels")
        elif char in "]}":
            depth -= 1
        elif word := _BARE.match(text, i):
            if word[0].lstrip("-") in ("NaN", "Infinity"):
                return _at(text, i, f"{word[0]} is not a JSON number")
            if not math.isfinite(float(word[0])):
                return _at(text, i, f"{word[0]} is too large a number")
            i = word.end()
            continue
        i += 1
    return JSONTextError("not JSON holosc can read", 1, 1)


def _at(text: str, index: int, reason: str) -> JSONTextError:
    line = text.count("\n", 0, index) + 1
    return JSONTextError(reason, line, index - (text.rfind("\n", 0, index) + 1) + 1)
