"""The jinja2 environment: strict, deterministic, loading from the shipped templates/."""

from __future__ import annotations

import functools
from importlib import resources
from typing import Any

import jinja2


@functools.cache
def environment() -> jinja2.Environment:
    root = resources.files("holosc.templates")
    return jinja2.Environment(
        loader=jinja2.FunctionLoader(lambda name: (root / name).read_text("utf-8")),
        undefined=jinja2.StrictUndefined,
        autoescape=False,  # shell and unit files, not HTML: values are escaped in Python
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
    )


def render(name: str, **context: Any) -> str:
    return environment().get_template(name).render(**context)
