"""A quick yes/no: does a document conform to holos.schema.json?

jsonschema explains every violation well but takes longer to import than a valid
holos.yaml takes to check, so `holosc.core.validate.schema.check` asks this module first and imports
jsonschema only for a document that fails here. The answer True is given only when
certain: a keyword this module does not implement, a non-string key or anything unusual
makes it answer False, and jsonschema decides. tests/test_conforms.py compares the two
on generated documents.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable
from typing import Any

# Keywords that never constrain an instance.
_ANNOTATIONS = frozenset(
    ("$schema", "$id", "$comment", "$defs", "title", "description", "default", "examples")
)


class _Unsure(Exception):
    """The schema uses something not implemented here: let jsonschema decide."""


def conforms(schema: dict[str, Any], instance: Any) -> bool:
    """True only if `instance` is certainly valid against `schema` (draft 2020-12)."""
    try:
        return _valid(schema, instance, schema)
    except (_Unsure, re.error, TypeError, RecursionError):
        return False


def _valid(schema: Any, value: Any, root: dict[str, Any]) -> bool:
    if schema is True:
        return True
    if schema is False or not isinstance(schema, dict):
        return False if schema is False else _unsure()
    for keyword, arg in schema.items():
        if keyword in _ANNOTATIONS:
            continue
        check = _KEYWORDS.get(keyword)
        if check is None:
            _unsure()
        if not check(arg, value, schema, root):  # type: ignore[misc]
            return False
    return True


def _unsure() -> bool:
    raise _Unsure


def _is_type(value: Any, name: str) -> bool:
    if name == "string":
        return isinstance(value, str)
    if name == "boolean":
        return isinstance(value, bool)
    if name == "null":
        return value is None
    if name == "object":
        if isinstance(value, dict):
            return all(isinstance(k, str) for k in value) or _unsure()
        return False
    if name == "array":
        return isinstance(value, list)
    if isinstance(value, bool):
        return False
    if name == "integer":
        return isinstance(value, int) or (isinstance(value, float) and _unsure())
    if name == "number":
        return isinstance(value, int | float)
    return _unsure()


def _type(arg: Any, value: Any, schema: Any, root: Any) -> bool:
    return any(_is_type(value, t) for t in ([arg] if isinstance(arg, str) else arg))


def _plain(value: Any) -> bool:
    """Values whose equality jsonschema and Python agree on (no 1 == True, 1 == 1.0)."""
    return isinstance(value, str) or value is None


def _enum(arg: Any, value: Any, schema: Any, root: Any) -> bool:
    if not _plain(value) or not all(_plain(a) for a in arg):
        return _unsure()
    return value in arg


def _ref(arg: Any, value: Any, schema: Any, root: Any) -> bool:
    if not isinstance(arg, str) or not arg.startswith("#/$defs/") or arg.count("/") != 2:
        return _unsure()
    return _valid(root["$defs"][arg.removeprefix("#/$defs/")], value, root)


def _properties(arg: Any, value: Any, schema: Any, root: Any) -> bool:
    if not isinstance(value, dict):
        return True
    return all(_valid(sub, value[k], root) for k, sub in arg.items() if k in value)


def _pattern_properties(arg: Any, value: Any, schema: Any, root: Any) -> bool:
    if not isinstance(value, dict):
        return True
    return all(
        _valid(sub, v, root)
        for pattern, sub in arg.items()
        for k, v in value.items()
        if regex(pattern).search(k)
    )


def _additional(arg: Any, value: Any, schema: Any, root: Any) -> bool:
    if not isinstance(value, dict):
        return True
    named = schema.get("properties", {})
    patterns = list(schema.get("patternProperties", {}))
    return all(
        _valid(arg, v, root)
        for k, v in value.items()
        if k not in named and not any(regex(p).search(k) for p in patterns)
    )


def _property_names(arg: Any, value: Any, schema: Any, root: Any) -> bool:
    return not isinstance(value, dict) or all(_valid(arg, k, root) for k in value)


def _required(arg: Any, value: Any, schema: Any, root: Any) -> bool:
    return not isinstance(value, dict) or all(k in value for k in arg)


def _min_properties(arg: Any, value: Any, schema: Any, root: Any) -> bool:
    return not isinstance(value, dict) or len(value) >= arg


def _max_properties(arg: Any, value: Any, schema: Any, root: Any) -> bool:
    return not isinstance(value, dict) or len(value) <= arg


def _items(arg: Any, value: Any, schema: Any, root: Any) -> bool:
    if "prefixItems" in schema:
        return _unsure()
    return not isinstance(value, list) or all(_valid(arg, v, root) for v in value)


def _min_items(arg: Any, value: Any, schema: Any, root: Any) -> bool:
    return not isinstance(value, list) or len(value) >= arg


def _max_items(arg: Any, value: Any, schema: Any, root: Any) -> bool:
    return not isinstance(value, list) or len(value) <= arg


def _min_length(arg: Any, value: Any, schema: Any, root: Any) -> bool:
    return not isinstance(value, str) or len(value) >= arg


def _pattern(arg: Any, value: Any, schema: Any, root: Any) -> bool:
    return not isinstance(value, str) or regex(arg).search(value) is not None


@functools.cache
def regex(pattern: str) -> re.Pattern[str]:
    """`pattern` as ECMA-262 reads it: a final `$` matches only at the very end (Python's
    `$` also matches before a final newline, so "demo\n" would pass as a name)."""
    if pattern.endswith("$") and not pattern.endswith("\\$"):
        pattern = pattern[:-1] + r"\Z"
    return re.compile(pattern)


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _minimum(arg: Any, value: Any, schema: Any, root: Any) -> bool:
    return not _number(value) or value >= arg


def _maximum(arg: Any, value: Any, schema: Any, root: Any) -> bool:
    return not _number(value) or value <= arg


def _one_of(arg: Any, value: Any, schema: Any, root: Any) -> bool:
    return sum(_valid(sub, value, root) for sub in arg) == 1


def _any_of(arg: Any, value: Any, schema: Any, root: Any) -> bool:
    return any(_valid(sub, value, root) for sub in arg)


_KEYWORDS: dict[str, Callable[[Any, Any, Any, Any], bool]] = {
    "type": _type,
    "enum": _enum,
    "$ref": _ref,
    "properties": _properties,
    "patternProperties": _pattern_properties,
    "additionalProperties": _additional,
    "propertyNames": _property_names,
    "required": _required,
    "minProperties": _min_properties,
    "maxProperties": _max_properties,
    "items": _items,
    "minItems": _min_items,
    "maxItems": _max_items,
    "minLength": _min_length,
    "pattern": _pattern,
    "minimum": _minimum,
    "maximum": _maximum,
    "oneOf": _one_of,
    "anyOf": _any_of,
}
