"""escape.yaml_document uses libyaml's emitter only where it writes exactly the bytes of
PyYAML's pure-Python emitter (the reference): generated documents compare the two."""

from __future__ import annotations

from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from holosc.core.render import escape


def both(data: Any) -> tuple[str, str]:
    return escape.yaml_document(data, libyaml=False), escape.yaml_document(data)


def test_libyaml_is_available() -> None:
    """PyYAML's wheels and python3-yaml ship the C extension; without it builds are slow."""
    assert yaml.__with_libyaml__ and escape._CDumper is not None


TRICKY = [
    "a", " ", "  ", "\n", "\n\n", "\t", ": ", "- ", "#", " #", "...", "---", "null", "~",
    "1e3", "0x1F", "yes", "'", '"', "\\", "%", "@", "`", "|", ">", "!", "&x", "*x", "?",
    "é", "\u2028", "\x85", "\ufeff", "\r", "{", "}", "[", "]", ",", "x" * 200, "\xa0",
    "\x7f", "\x00", "\U0001f600",
]  # fmt: skip
TEXT = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=30) | st.lists(
    st.sampled_from(TRICKY), max_size=12
).map("".join)
KEYS = st.from_regex(r"[a-z][a-z_-]{0,10}", fullmatch=True) | TEXT
DOCS = st.dictionaries(
    KEYS,
    st.recursive(
        TEXT | st.integers() | st.booleans() | st.none(),
        lambda inner: st.lists(inner, max_size=4) | st.dictionaries(KEYS, inner, max_size=4),
        max_leaves=20,
    ),
    max_size=5,
)


@settings(max_examples=500, deadline=None, suppress_health_check=list(HealthCheck))
@given(DOCS)
def test_same_bytes_where_libyaml_is_used(data: Any) -> None:
    python, chosen = both(data)
    assert python == chosen
    assert yaml.safe_load(chosen) == data


@pytest.mark.parametrize(
    "data",
    [
        {"a": "\U0001f600"},  # libyaml escapes characters beyond U+FFFF
        {"a": "\n", "b": 1},  # "keep" chomping: libyaml ends the document with "..."
        {"a": ["x\n\n", "y"]},
        {"": 1},  # keys that are not plain words
    ],
)
def test_where_they_differ_the_python_emitter_is_used(data: Any) -> None:
    assert not escape.libyaml_emits_same(data)
    libyaml = yaml.dump(
        data,
        Dumper=escape._CDumper,
        sort_keys=False,
        default_flow_style=False,
        allow_unicode=True,
        width=1_000_000,
        indent=2,
    )
    assert libyaml != escape.yaml_document(data, libyaml=False)
