"""compose `.env` and `env_file` syntax: KEY=VALUE lines (text in, variables out)."""

from __future__ import annotations

import re


def parse_dotenv(text: str) -> dict[str, str]:
    result: dict[str, str] = {}
    for raw_line in text.splitlines():
        line = raw_line.strip()
        if not line or line.startswith("#"):
            continue
        line = line.removeprefix("export ").lstrip()
        key, sep, value = line.partition("=")
        key = key.strip()
        if not sep or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", key):
            continue
        value = value.strip()
        if value[:1] == "'" and value.find("'", 1) > 0:
            value = value[1 : value.find("'", 1)]
        elif value[:1] == '"' and _closing_quote(value) > 0:
            body = value[1 : _closing_quote(value)]
            value = re.sub(r"\\(.)", lambda m: {"n": "\n", "t": "\t"}.get(m[1], m[1]), body)
        else:
            value = re.split(r"\s#", value, maxsplit=1)[0].rstrip()
        result[key] = value
    return result


def _closing_quote(value: str) -> int:
    i = 1
    while i < len(value):
        if value[i] == "\\":
            i += 2
            continue
        if value[i] == '"':
            return i
        i += 1
    return -1
