"""A document under assembly: values with the marks (line, column, file) of every value,
and compose's merge of one service onto another (extends:, include's path lists).

Merge rules (compose-spec "Merge and override", compose-go's override package):
mappings merge key by key, the overriding side winning; sequences append; `healthcheck.test`
and `vm.extra_args` are replaced; `environment` merges by variable name whether each side
is a mapping or a `KEY=VALUE` list; `env_file` (a string or a list) appends, one entry per
path; `depends_on` merges by service, a list side read as the short form; `ports`,
`volumes` (by target), `secrets` (by target), `profiles` and `devices` (by PCI address)
keep one entry per key, the overriding side's.
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Callable, Mapping
from typing import Any

from holosc.core.document import Document, JsonPath

_REPLACED = {("healthcheck", "test"), ("vm", "extra_args")}


class Tree:
    """Values and marks by path; `main` is the document the tree started from."""

    def __init__(self, main: Document) -> None:
        self.main = main
        # A copy: documents are cached and shared (a file reached twice is read once).
        data = copy.deepcopy(main.data)
        self.data: dict[str, Any] = data if isinstance(data, dict) else {}
        self.marks = dict(main.marks)
        self.key_marks = dict(main.key_marks)
        self.raw = dict(main.raw)
        self.quoted = set(main.quoted)
        self.origins = dict(main.origins)

    def view(self) -> Document:
        """The tree as a Document (tables shared: read it before changing the tree)."""
        return dataclasses.replace(
            self.main,
            data=self.data,
            marks=self.marks,
            key_marks=self.key_marks,
            raw=self.raw,
            quoted=frozenset(self.quoted),
            origins=self.origins,
        )

    def snapshot(self) -> Document:
        """A copy of the tree's marks as they are now, to graft from later."""
        return dataclasses.replace(
            self.view(),
            marks=dict(self.marks),
            key_marks=dict(self.key_marks),
            raw=dict(self.raw),
            origins=dict(self.origins),
        )

    # -- marks ------------------------------------------------------------------------

    def _tables(self) -> tuple[dict[JsonPath, Any], ...]:
        return (self.marks, self.key_marks, self.raw, self.origins)

    def graft(self, dst: JsonPath, src: Document, path: JsonPath) -> None:
        """Copy the marks of `src` under `path` to `dst`, remembering their file."""
        n = len(path)
        theirs: tuple[Mapping[JsonPath, Any], ...] = (
            src.marks,
            src.key_marks,
            src.raw,
            src.origins,
        )
        for table, source in zip(self._tables(), theirs, strict=True):
            for p, v in source.items():
                if p[:n] == path:
                    table[(*dst, *p[n:])] = v
        self.quoted |= {(*dst, *p[n:]) for p in src.quoted if p[:n] == path}
        if dst not in self.origins or src.file != self.main.file:
            self.origins[dst] = origin_of(src.origins, path, src.file)

    def drop_under(self, path: JsonPath) -> None:
        n = len(path)
        for table in self._tables():
            for p in [p for p in table if p[:n] == path]:
                del table[p]
        self.quoted = {p for p in self.quoted if p[:n] != path}

    def _move(self, dst: JsonPath, moved: Callable[[Any], Any]) -> None:
        """Rename the children of `dst` (their marks) by `moved(child)`."""
        n = len(dst)

        def rename(p: JsonPath) -> JsonPath:
            if len(p) > n and p[:n] == dst:
                return (*dst, moved(p[n]), *p[n + 1 :])
            return p

        for table in self._tables():
            items = list(table.items())
            table.clear()
            table.update((rename(p), v) for p, v in items)
        self.quoted = {rename(p) for p in self.quoted}

    # -- merging ----------------------------------------------------------------------

    def merge(
        self,
        dst: JsonPath,
        base: tuple[Document, JsonPath, Any],
        over: Any,
        rel: tuple[str, ...] = (),
    ) -> Any:
        """compose's merge of `over` onto `base`; marks of `over` are already at `dst`."""
        if len(rel) == 1 and rel[0] in ("env_file", "environment", "depends_on"):
            base, over = self._common_form(dst, base, over, rel[0])
        base_doc, base_path, base_value = base
        if isinstance(base_value, dict) and isinstance(over, dict):
            result = dict(base_value)
            for key in base_value:
                if key not in over:
                    self.graft((*dst, key), base_doc, (*base_path, key))
            for key, value in over.items():
                if key in base_value:
                    child = (base_doc, (*base_path, key), base_value[key])
                    result[key] = self.merge((*dst, key), child, value, (*rel, key))
                else:
                    result[key] = value
            return result
        if isinstance(base_value, list) and isinstance(over, list) and rel[-2:] not in _REPLACED:
            return self._merge_lists(dst, base, over, rel)
        return over

    def _merge_lists(
        self,
        dst: JsonPath,
        base: tuple[Document, JsonPath, Any],
        over: list[Any],
        rel: tuple[str, ...],
    ) -> list[Any]:
        """The base's entries that `over` does not redefine, then `over`'s, each entry
        once (compose drops an entry identical to one already there)."""
        base_doc, base_path, base_value = base
        redefined = {identity(rel, o) for o in over}
        kept = [(i, v) for i, v in enumerate(base_value) if identity(rel, v) not in redefined]
        result = [v for _, v in kept]
        moved: dict[int, int] = {}
        for j, item in enumerate(over):
            if item in result:
                self.drop_under((*dst, j))
            else:
                moved[j] = len(result)
                result.append(item)
        self._move(dst, lambda c: moved.get(c, c) if isinstance(c, int) else c)
        for new, (old, _) in enumerate(kept):
            self.graft((*dst, new), base_doc, (*base_path, old))
        return result

    def _common_form(
        self, dst: JsonPath, base: tuple[Document, JsonPath, Any], over: Any, field: str
    ) -> tuple[tuple[Document, JsonPath, Any], Any]:
        """Both sides of a field merged by key in one form: `env_file` as a list,
        `environment` and `depends_on` as a mapping when either side is one."""
        doc, path, value = base
        if field == "env_file":
            if isinstance(value, str):
                base = (_renamed_doc(doc, path, None), path, [value])
            if isinstance(over, str):
                if dst in self.marks:
                    self.marks[(*dst, 0)] = self.marks[dst]
                if dst in self.raw:
                    self.raw[(*dst, 0)] = self.raw[dst]
                over = [over]
            return base, over
        convert = _environment_mapping if field == "environment" else _depends_mapping
        if isinstance(value, list) and isinstance(over, dict):
            converted, renames = convert(value)
            base = (_renamed_doc(doc, path, renames), path, converted)
        elif isinstance(value, dict) and isinstance(over, list):
            over, renames = convert(over)
            self._move(dst, lambda c: renames.get(c, c))
        return base, over


def _renamed_doc(doc: Document, path: JsonPath, renames: dict[int, str] | None) -> Document:
    """`doc` with the marks of `path`'s list items under their new keys (`renames`), or
    with the scalar at `path` also marked as item 0 of a list (`None`)."""

    def table(source: Mapping[JsonPath, Any]) -> dict[JsonPath, Any]:
        result = dict(source)
        if renames is None:
            if path in source:
                result[(*path, 0)] = source[path]
            return result
        n = len(path)
        for p, v in source.items():
            child = p[n] if len(p) > n and p[:n] == path else None
            if isinstance(child, int) and child in renames:
                result[(*path, renames[child], *p[n + 1 :])] = v
        return result

    return dataclasses.replace(doc, marks=table(doc.marks), raw=table(doc.raw))


def _environment_mapping(items: list[Any]) -> tuple[dict[str, Any], dict[int, str]]:
    """`KEY=VALUE` items as a mapping (a bare `KEY` maps to None); later items win."""
    result: dict[str, Any] = {}
    renames: dict[int, str] = {}
    for i, item in enumerate(items):
        key, sep, value = str(item).partition("=")
        result.pop(key, None)
        result[key] = value if sep else None
        renames[i] = key
    return result, renames


def _depends_mapping(items: list[Any]) -> tuple[dict[str, Any], dict[int, str]]:
    """The short form as the long one: `{service: {}}` keeps its meaning."""
    result: dict[str, Any] = {str(item): {} for item in items}
    return result, {i: str(item) for i, item in enumerate(items)}


def identity(rel: tuple[str, ...], value: Any) -> Any:
    """What makes two list entries the same entry in compose's merge."""
    field = rel[-1] if len(rel) == 1 else None
    if field == "volumes" and isinstance(value, str):
        parts = value.split(":")
        return ("volume", parts[1] if len(parts) > 1 else parts[0])
    if field == "ports":
        return ("port", str(value))
    if field == "secrets":
        return ("secret", _secret_target(value))
    if field == "env_file":
        return ("env_file", value.get("path") if isinstance(value, dict) else value)
    if field == "environment":
        return ("env", str(value).partition("=")[0])
    if field == "profiles":
        return ("profile", value)
    if field == "devices" and isinstance(value, dict):
        return ("device", str(value.get("pci")))
    return ("item", id(value))


def _secret_target(value: Any) -> Any:
    target = value.get("target", value.get("source")) if isinstance(value, dict) else value
    target = str(target)
    return target if target.startswith("/") else f"/run/secrets/{target}"


def origin_of(origins: Mapping[JsonPath, str], path: JsonPath, default: str) -> str:
    for n in range(len(path), -1, -1):
        if path[:n] in origins:
            return origins[path[:n]]
    return default
