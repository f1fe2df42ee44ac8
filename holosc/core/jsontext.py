"""JSON that people edit or commit (holos.lock.json, holos-export.lock): parsed into plain
values or refused with ValueError, never another exception.

Python's json accepts NaN and Infinity (which no int() takes), turns 1e400 into an
infinite float, and raises RecursionError, not ValueError, on deep nesting.
"""

from __future__ import annotations

import json
import math
from typing import Any

MAX_DEPTH = 64  # as holos.yaml (holosc.load.parse): a lock nests four levels


def loads(data: str | bytes) -> Any:
    """The value of JSON text `data`.

    :raises ValueError: when it is not JSON, holds NaN or an infinite number, or nests
        deeper than MAX_DEPTH.
    """
    try:
        value = json.loads(data, parse_constant=_refuse, parse_float=_finite)
    except RecursionError:
        raise ValueError(f"JSON nests deeper than {MAX_DEPTH} levels") from None
    _check_depth(value)
    return value


def _refuse(word: str) -> Any:
    raise ValueError(f"{word} is not a JSON number")


def _finite(text: str) -> float:
    number = float(text)
    if not math.isfinite(number):
        raise ValueError(f"{text} is too large a number")
    return number


def _check_depth(value: Any) -> None:
    level = [value]
    for _ in range(MAX_DEPTH):
        level = [
            child
            for item in level
            if isinstance(item, dict | list)
            for child in (item.values() if isinstance(item, dict) else item)
        ]
        if not level:
            return
    raise ValueError(f"JSON nests deeper than {MAX_DEPTH} levels")
