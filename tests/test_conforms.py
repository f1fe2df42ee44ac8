"""holosc.core.validate.conforms (the quick schema check) never calls a document valid that
jsonschema rejects, and calls every valid fixture valid (so `holosc validate` skips jsonschema)."""

from __future__ import annotations

import contextlib
import copy
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from holosc.core.validate import schema
from holosc.core.validate.conforms import conforms
from holosc.errors import HolosError
from holosc.load.parse import load_file
from tests.conftest import EXAMPLES

CASES = Path(__file__).parent / "cases"
FILES = sorted(EXAMPLES.glob("*/holos.yaml")) + sorted(CASES.glob("*.yaml"))


def documents() -> dict[str, Any]:
    """Every fixture that is a YAML mapping (the loader's own error cases are not)."""
    docs = {}
    for path in FILES:
        with contextlib.suppress(HolosError):
            docs[f"{path.parent.name}/{path.name}"] = load_file(
                path, environ={"GREETING": "hi"}
            ).data
    return docs


DOCS = documents()
# The validator holosc falls back to: jsonschema, with patterns read as ECMA-262 does.
VALIDATOR = schema._validator()


def jsonschema_valid(data: Any) -> bool:
    return not any(True for _ in VALIDATOR.iter_errors(data))


@pytest.mark.parametrize("name", sorted(DOCS))
def test_agrees_with_jsonschema_on_fixtures(name: str) -> None:
    assert conforms(schema.schema_data(), DOCS[name]) == jsonschema_valid(DOCS[name])


VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-3, 70000)
    | st.sampled_from([0, -1, 1, 2, 127, 128, 253, 254, 255, 256, 1.0, 2.5, True])
    | st.floats(allow_nan=False)
    | st.sampled_from(["", "web", "Web", "-x", "a" * 64, "1", "1s", "debian", "x-a", "0644"])
    | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.dictionaries(
            st.sampled_from(["image", "vm", "x-y", "test", "name", "path", "zz", "Web", "web"]),
            inner,
            max_size=3,
        )
    ),
    max_leaves=6,
)


def _paths(node: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    result = [prefix]
    if isinstance(node, dict):
        for key, value in node.items():
            result += _paths(value, (*prefix, key))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            result += _paths(value, (*prefix, index))
    return result


@st.composite
def mutated(draw: st.DrawFn) -> Any:
    data = copy.deepcopy(draw(st.sampled_from(list(DOCS.values()))))
    for _ in range(draw(st.integers(1, 3))):
        path = draw(st.sampled_from(_paths(data)))
        if not path:
            continue
        parent = data
        for step in path[:-1]:
            parent = parent[step]
        action = draw(st.sampled_from(["replace", "delete", "add"]))
        if action == "replace":
            parent[path[-1]] = draw(VALUES)
        elif action == "delete":
            del parent[path[-1]]
        elif isinstance(parent, dict):
            parent[draw(VALUES.filter(lambda v: isinstance(v, str)))] = draw(VALUES)
        else:
            parent.append(draw(VALUES))
    return data


@settings(max_examples=400, deadline=None, suppress_health_check=list(HealthCheck))
@given(mutated())
def test_never_valid_where_jsonschema_is_not(data: Any) -> None:
    if conforms(schema.schema_data(), data):
        assert jsonschema_valid(data)


def _subschemas(node: Any) -> list[dict[str, Any]]:
    found = []
    if isinstance(node, dict):
        if any(k in node for k in ("type", "$ref", "oneOf", "enum", "properties")):
            found.append(node)
        for value in node.values():
            found += _subschemas(value)
    elif isinstance(node, list):
        for value in node:
            found += _subschemas(value)
    return found


# Every sub-schema, with the definitions its $refs point into.
SUBSCHEMAS = [
    {**node, "$defs": schema.schema_data()["$defs"]}
    for node in _subschemas(schema.schema_data())
    if "$defs" not in node
]


BOUNDARIES = [0, -1, 1, 127, 128, 253, 254, 255, 256, 1.0, 2.5, True, None, "", "x", [], {}, [""]]


@pytest.mark.parametrize("sub", SUBSCHEMAS, ids=lambda s: str(SUBSCHEMAS.index(s)))
@settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
@given(value=VALUES | st.sampled_from(BOUNDARIES))
def test_never_valid_where_jsonschema_is_not_for_each_part(sub: dict[str, Any], value: Any) -> None:
    if conforms(sub, value):
        assert not any(True for _ in jsonschema.Draft202012Validator(sub).iter_errors(value))
