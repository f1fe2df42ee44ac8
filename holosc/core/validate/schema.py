"""The JSON Schema of holos.yaml (draft 2020-12) and its error messages.

The schema file ships in the package (`holosc/core/validate/holos.schema.json`), is printed by
`holosc schema`, and can be used by editors through yaml-language-server with
`# yaml-language-server: $schema=...`. This module maps jsonschema's errors to one
positioned, human message each.
"""

from __future__ import annotations

import difflib
import functools
import json
from importlib import resources
from typing import TYPE_CHECKING, Any

from holos_runtime.terminal import terminal_safe

from holosc.core.document import Document, JsonPath
from holosc.core.validate.conforms import conforms, regex
from holosc.errors import Diagnostic

if TYPE_CHECKING:
    import jsonschema

_TYPE_NAMES = {
    "string": "a string",
    "integer": "an integer",
    "number": "a number",
    "boolean": "true or false",
    "array": "a list",
    "object": "a mapping",
    "null": "empty",
}


@functools.cache
def schema_text() -> str:
    return (resources.files("holosc.core.validate") / "holos.schema.json").read_text("utf-8")


@functools.cache
def schema_data() -> dict[str, Any]:
    data = json.loads(schema_text())
    assert isinstance(data, dict)
    return data


@functools.cache
def _validator() -> Any:
    import jsonschema  # only for documents that need explaining: its import is slow
    import jsonschema.validators

    def pattern(validator: Any, arg: str, instance: Any, schema: Any) -> Any:
        # As conforms reads it (ECMA-262): "demo\n" does not match `^...$`.
        if validator.is_type(instance, "string") and not regex(arg).search(instance):
            yield jsonschema.ValidationError(f"{instance!r} does not match {arg!r}")

    jsonschema.Draft202012Validator.check_schema(schema_data())
    extended = jsonschema.validators.extend(  # type: ignore[no-untyped-call]
        jsonschema.Draft202012Validator, {"pattern": pattern}
    )
    return extended(schema_data())


def check(doc: Document) -> list[Diagnostic]:
    """Every schema violation of `doc`, one diagnostic each."""
    if conforms(schema_data(), doc.data):
        return []
    return [_diagnostic(doc, error) for error in _leaf_errors(_validator().iter_errors(doc.data))]


def _leaf_errors(errors: Any) -> list[jsonschema.ValidationError]:
    result = []
    for error in errors:
        if error.validator in ("oneOf", "anyOf") and error.context:
            # Report the alternative that got furthest, unless all failed on type only.
            deepest = [e for e in error.context if e.validator != "type"]
            if (
                deepest
                and len({tuple(e.absolute_path) for e in deepest}) >= 1
                and all(len(e.absolute_path) > len(error.absolute_path) for e in deepest)
            ):
                result += _leaf_errors(deepest)
                continue
        result.append(error)
    return result


def _describe(value: Any) -> str:
    """The offending value itself where it is short enough to quote, else its type."""
    if isinstance(value, bool):
        return f"the boolean {str(value).lower()}"
    if isinstance(value, str):
        text = json.dumps(value if len(value) <= 40 else value[:37] + "...", ensure_ascii=False)
        return f"the string {text}"
    if isinstance(value, int):
        return f"the integer {value}"
    if isinstance(value, float):
        return f"the number {value}"
    if isinstance(value, list):
        return _TYPE_NAMES["array"]
    if isinstance(value, dict):
        return _TYPE_NAMES["object"]
    return "empty" if value is None else type(value).__name__


_YAML11_BOOLEANS = {"yes", "no", "on", "off", "y", "n"}


def _type_hint(types: list[str], value: Any, path: JsonPath) -> str | None:
    """What to write instead, for the common slips of a compose file."""
    if "string" in types and isinstance(value, int | float) and not isinstance(value, bool):
        return "quote the value"
    if {"integer", "number"} & set(types) and isinstance(value, str):
        try:
            float(value)
        except ValueError:
            return None
        return "drop the quotes"
    if types == ["boolean"] and isinstance(value, str) and value.lower() in _YAML11_BOOLEANS:
        return "holos.yaml is YAML 1.2, where only true and false are booleans"
    if "array" in types and isinstance(value, str | int) and not isinstance(value, bool):
        key = path[-1] if path and isinstance(path[-1], str) else "value"
        return f"{key}: [{json.dumps(value, ensure_ascii=False)}]"
    return None


def _diagnostic(doc: Document, error: jsonschema.ValidationError) -> Diagnostic:
    path: JsonPath = tuple(error.absolute_path)
    key = False
    hint = None
    if error.validator == "additionalProperties":
        path, message, hint = _unknown_key(path, error.instance, error.schema)
        key = True
    elif error.validator == "pattern":
        path, message, key = _bad_name(path, error)
    else:
        message, hint = _message(path, error)
    return doc.diagnostic(path, message, hint=hint, key=key)


def _unknown_key(path: JsonPath, value: Any, schema: Any) -> tuple[JsonPath, str, str | None]:
    """The first unknown key (x- keys last), with the closest known key as a hint."""
    allowed = sorted(schema.get("properties", {}))
    extra = sorted(set(value) - set(allowed))
    unknown = next((k for k in extra if not k.startswith("x-")), extra[0] if extra else "?")
    close = difflib.get_close_matches(unknown, allowed, n=1)
    hint = (
        f"did you mean '{close[0]}'?"
        if close
        else (f"known keys: {', '.join(allowed)}; x- keys are ignored" if allowed else None)
    )
    return (*path, unknown), f"unknown key '{unknown}'", hint


def _bad_name(path: JsonPath, error: jsonschema.ValidationError) -> tuple[JsonPath, str, bool]:
    """A name that fails its pattern: a secret, a profile, or a DNS-label name."""
    value: Any = error.instance
    if path[:1] == ("secrets",):
        message = (
            f"'{value}' is not a valid secret name: use up to 63 letters, digits, '_', '.' "
            "and '-', starting with a letter or digit"
        )
        return (*path, str(value)), message, True
    if path[-2:-1] == ("profiles",):
        message = (
            f"'{value}' is not a valid profile name: use letters, digits, '_', '.' and '-', "
            "starting with a letter or digit"
        )
        return path, message, False
    message = (
        f"'{terminal_safe(value, one_line=True)}' is not a valid name: use 1-63 "
        "lowercase letters, digits and '-', starting and ending with a letter or digit"
    )
    if "propertyNames" in error.schema_path:
        return (*path, str(value)), message, True
    return path, message, False


def _message(path: JsonPath, error: jsonschema.ValidationError) -> tuple[str, str | None]:
    """Message and hint for every other kind of schema error."""
    kind = error.validator
    value: Any = error.instance
    arg: Any = error.validator_value
    hint = None
    if kind == "required":
        message = f"missing required key '{arg[0] if len(arg) == 1 else error.message}'"
        missing = [k for k in arg if k not in value]
        message = f"missing required key '{missing[0]}'" if missing else message
    elif kind == "type":
        types = [arg] if isinstance(arg, str) else list(arg)
        wanted = " or ".join(_TYPE_NAMES.get(t, t) for t in types)
        message = f"must be {wanted}, not {_describe(value)}"
        hint = _type_hint(types, value, path)
    elif kind == "enum":
        message = f"'{value}' is not one of: {', '.join(map(str, arg))}"
    elif kind == "minimum":
        message = f"must be at least {arg}, not {value}"
    elif kind == "maximum":
        message = f"must be at most {arg}, not {value}"
    elif kind in ("minProperties", "maxProperties") and len(path) == 2 and path[0] == "secrets":
        message = "needs exactly one of file: or environment:"
        hint = "file: ./secret.txt reads a host file at start; environment: VAR takes $VAR at up"
    elif kind == "minProperties":
        message = (
            "at least one service is required"
            if path == ("services",)
            else f"must have at least {arg} entries"
        )
    elif kind == "minLength" or kind == "minItems":
        message = "must not be empty"
    elif kind in ("oneOf", "anyOf"):
        message = f"must be a string or a list of strings, not {_describe(value)}"
        if path[-1:] == ("depends_on",):
            message = f"must be a list of service names or a mapping, not {_describe(value)}"
    else:
        message = error.message
    return message, hint
