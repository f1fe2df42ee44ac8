"""Read holos.yaml: YAML with a position for every node, then compose interpolation.

This module owns the file-reading edge of the compiler. It returns a `Document`: plain
Python values (dict, list, str, int, float, bool, None) plus a map from each value's path
to its line and column, and the source text of every plain scalar so that fields such as
ports and file permissions keep what the user wrote.

YAML 1.1 surprises are switched off: only `true`/`false` are booleans, there are no
sexagesimal numbers (`2222:22` stays a string) and no implicit timestamps. Duplicate keys,
a second document, unknown tags and oversized or alias-bomb inputs are errors.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import posixpath
import re
import unicodedata
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml
import yaml.composer
import yaml.constructor
import yaml.nodes
import yaml.resolver

from holosc.core.document import (
    MAX_FILE_BYTES,
    Document,
    JsonPath,
    Mark,
    plain_scalar,
    source_line,
)
from holosc.core.interpolate import interpolate_document
from holosc.errors import Diagnostic, LoadError, ValidationError
from holosc.load.environment import project_environment
from holosc.load.regular import read_regular

MAX_NODES = 200_000  # after alias expansion: bounds "billion laughs" documents
MAX_DEPTH = 64

_SURROGATE = re.compile("[\ud800-\udfff]")


class _TooDeep(yaml.composer.ComposerError):
    pass


class _Loader(yaml.SafeLoader):
    """PyYAML's safe loader with YAML 1.2-like implicit typing left to us.

    Its composer recurses once per nesting level; it stops at MAX_DEPTH, long before
    Python's recursion limit (about 600 levels of `[` otherwise end in RecursionError).
    """

    depth = 0

    def compose_node(self, parent: Any, index: Any) -> Any:
        self.depth += 1
        try:
            if self.depth > MAX_DEPTH:
                mark = self.peek_event().start_mark  # type: ignore[no-untyped-call]
                raise _TooDeep(None, None, f"document nests deeper than {MAX_DEPTH} levels", mark)
            return super().compose_node(parent, index)
        finally:
            self.depth -= 1


# Drop every implicit resolver except merge keys: _to_value types plain scalars itself.
_Loader.yaml_implicit_resolvers = {}
_MERGE = "tag:yaml.org,2002:merge"
_Loader.add_implicit_resolver(_MERGE, re.compile(r"^(?:<<)$"), ["<"])
_PLAIN = "tag:holosc,2026:plain"
_Loader.add_implicit_resolver(_PLAIN, re.compile(r".*", re.DOTALL), None)


def find_compose_file(directory: Path) -> Path:
    """holos.yaml, then holos.yml, in `directory`.

    :raises LoadError: when neither exists.
    """
    for name in ("holos.yaml", "holos.yml"):
        if (directory / name).is_file():
            return directory / name
    raise LoadError(
        f"no holos.yaml found in {directory}",
        [
            Diagnostic(
                f"no holos.yaml or holos.yml in {directory}",
                file=str(directory),
                hint="pass -f FILE or run from the project directory",
            )
        ],
    )


def load_file(
    path: Path, environ: Mapping[str, str] | None = None, *, display: str | None = None
) -> Document:
    """Read, parse and interpolate the project file `path` (named `display` in
    diagnostics) with the project's environment: `environ` (default: holosc's) over the
    `.env` file beside it.

    :raises LoadError: on I/O or YAML errors, or a malformed `.env`.
    :raises ValidationError: on interpolation errors (``${VAR:?message}``).
    """
    display = display or path.name
    dotenv = posixpath.join(posixpath.dirname(display), ".env")
    env, warnings = project_environment(
        path.parent, os.environ if environ is None else environ, dotenv
    )
    doc = read_compose(path, env, display=display)
    return dataclasses.replace(doc, warnings=(*warnings, *doc.warnings))


def read_compose(path: Path, environ: Mapping[str, str], *, display: str) -> Document:
    """Read, parse and interpolate a compose file with exactly the variables `environ`.

    :raises LoadError: on I/O or YAML errors.
    :raises ValidationError: on interpolation errors.
    """
    try:
        data = read_regular(path)
        text = data.decode("utf-8")
    except OSError as exc:
        raise LoadError(
            f"cannot read {path}",
            [Diagnostic(f"cannot read file: {exc.strerror or exc}", file=display)],
        ) from exc
    except UnicodeDecodeError as exc:
        raise LoadError(
            f"cannot read {path}", [Diagnostic(f"cannot read file: {exc}", file=display)]
        ) from exc
    doc = load_text(text, file=display, directory=path.parent.resolve(), environ=environ)
    return dataclasses.replace(doc, sha256=hashlib.sha256(data).hexdigest())


def load_text(
    text: str,
    *,
    file: str = "holos.yaml",
    directory: Path = Path("."),
    environ: Mapping[str, str] | None = None,
) -> Document:
    """Parse compose YAML text (see `load_file`)."""
    if len(text.encode("utf-8", "surrogatepass")) > MAX_FILE_BYTES:
        raise LoadError("file too large", [Diagnostic("file too large", file=file)])
    node = _compose(text, file)
    builder = _Builder(file)
    if node is not None:
        builder.check_size(node)
    data = {} if node is None else builder.value(node, (), 0)
    doc = Document(
        file,
        data,
        builder.marks,
        builder.key_marks,
        builder.raw,
        directory,
        quoted=frozenset(builder.quoted),
        sources={file: tuple(text.splitlines())},
        environ=dict(environ or {}),
    )
    doc = interpolate_document(doc, doc.environ)
    doc = dataclasses.replace(doc, data=_resolve_bare_environment(doc.data, doc.environ))
    return _check_interpolated(doc)


def _resolve_bare_environment(data: Any, environ: Mapping[str, str]) -> Any:
    """compose-go's ResolveEnvironment, file by file: an item `KEY` of a service's
    `environment:` list becomes `KEY=value` when this file's environment sets KEY (an
    included file's environment is its own). What stays bare is resolved later with the
    project's environment, or left unset."""
    services = data.get("services") if isinstance(data, dict) else None
    if not isinstance(services, dict):
        return data
    resolved = {}
    for name, service in services.items():
        listed = service.get("environment") if isinstance(service, dict) else None
        if isinstance(listed, list):
            items = [
                f"{item}={environ[item]}" if isinstance(item, str) and item in environ else item
                for item in listed
            ]
            service = {**service, "environment": items}
        resolved[name] = service
    return {**data, "services": resolved}


def _check_interpolated(doc: Document) -> Document:
    """Refuse what interpolation brought that the YAML text could not hold: Python keeps
    an environment variable's bytes that are not UTF-8 as lone surrogates, which no file
    holosc writes can encode."""
    errors = [
        doc.diagnostic(
            path,
            "the value holds bytes that are not UTF-8, or a NUL (from the environment or .env)",
            hint="set the variable to UTF-8 text",
        )
        for path, value in _strings(doc.data)
        if "\0" in value or _SURROGATE.search(value)
    ]
    if errors:
        raise ValidationError(f"{len(errors)} error(s) in {doc.file}", errors)
    return doc


def _strings(data: Any) -> list[tuple[JsonPath, str]]:
    """Every string value of `data` with its path (keys are never interpolated)."""
    found: list[tuple[JsonPath, str]] = []
    stack: list[tuple[JsonPath, Any]] = [((), data)]
    while stack:
        path, value = stack.pop()
        if isinstance(value, str):
            found.append((path, value))
        elif isinstance(value, dict):
            stack += [((*path, k), v) for k, v in value.items()]
        elif isinstance(value, list):
            stack += [((*path, i), v) for i, v in enumerate(value)]
    return found


def _compose(text: str, file: str) -> yaml.nodes.Node | None:
    try:
        loader = _Loader(text)  # PyYAML's reader refuses characters YAML excludes here
    except yaml.reader.ReaderError as exc:
        raise _unprintable(exc, text, file) from exc
    try:
        node = loader.get_single_node()
    except _TooDeep as exc:
        raise _yaml_error(exc, file, exc.problem) from exc
    except yaml.composer.ComposerError as exc:
        if "expected a single document" in str(exc):
            raise _yaml_error(
                exc,
                file,
                "a second YAML document ('---') is not allowed",
                "holos.yaml holds exactly one document",
            ) from exc
        raise _yaml_error(exc, file) from exc
    except yaml.YAMLError as exc:
        raise _yaml_error(exc, file) from exc
    finally:
        loader.dispose()
    return node


def _yaml_error(
    exc: yaml.YAMLError, file: str, message: str | None = None, hint: str | None = None
) -> LoadError:
    mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
    problem = getattr(exc, "problem", None) or str(exc)
    diag = Diagnostic(
        message or f"invalid YAML: {problem}",
        file=file,
        line=mark.line + 1 if mark else None,
        col=mark.column + 1 if mark else None,
        hint=hint,
        source=_mark_line(mark),
    )
    return LoadError("invalid YAML", [diag])


# Where PyYAML's reader counts a line break.
_BREAK = re.compile("\r\n|[\n\r\x85\u2028\u2029]")


def _unprintable(exc: yaml.reader.ReaderError, text: str, file: str) -> LoadError:
    """A character YAML does not allow anywhere (C0 and C1 controls but tab and line
    breaks, DEL, U+FFFE, U+FFFF), at its line and column. The line itself is not shown:
    it may be a file that is no YAML at all (`include: [/proc/self/environ]`)."""
    before = text[: exc.position]
    breaks = list(_BREAK.finditer(before))
    col = exc.position - (breaks[-1].end() if breaks else 0) + 1
    code = exc.character if isinstance(exc.character, int) else ord(str(exc.character)[:1])
    kind = "control character" if unicodedata.category(chr(code)) == "Cc" else "character"
    message = f"the {kind} U+{code:04X} is not allowed in YAML, not even in a comment"
    hint = f'delete it, or write "\\u{code:04x}" in a double-quoted string' if code else "delete it"
    diag = Diagnostic(message, file=file, line=len(breaks) + 1, col=col, hint=hint)
    return LoadError("invalid YAML", [diag])


def _mark_line(mark: Any) -> str | None:
    """The source line of a PyYAML mark (its buffer is the text we parsed, NUL-terminated)."""
    buffer = getattr(mark, "buffer", None)
    if not isinstance(buffer, str):
        return None
    return source_line(tuple(buffer.rstrip("\0").splitlines()), mark.line + 1)


class _Builder:
    """Turn a composed node graph into values, recording marks as it goes."""

    def __init__(self, file: str) -> None:
        self.file = file
        self.marks: dict[JsonPath, Mark] = {}
        self.key_marks: dict[JsonPath, Mark] = {}
        self.raw: dict[JsonPath, str] = {}
        self.quoted: set[JsonPath] = set()
        self.count = 0
        self.heights: dict[int, int] = {}  # merge_height of each mapping node, by id

    def error(self, node: yaml.nodes.Node, message: str, hint: str | None = None) -> LoadError:
        mark = node.start_mark
        return LoadError(
            message,
            [
                Diagnostic(
                    message,
                    file=self.file,
                    line=mark.line + 1,
                    col=mark.column + 1,
                    hint=hint,
                    source=_mark_line(mark),
                )
            ],
        )

    def check_size(self, root: yaml.nodes.Node) -> None:
        """Reject alias bombs before expanding: the expanded size of each distinct node is
        computed once (aliases share node objects), so this costs the document's size."""
        sizes: dict[int, int] = {}

        def size(node: yaml.nodes.Node, depth: int) -> int:
            if id(node) in sizes:
                return sizes[id(node)]
            if depth > MAX_DEPTH:
                raise self.error(node, f"document nests deeper than {MAX_DEPTH} levels")
            children: list[yaml.nodes.Node] = []
            if isinstance(node, yaml.nodes.SequenceNode):
                children = list(node.value)
            elif isinstance(node, yaml.nodes.MappingNode):
                children = [n for pair in node.value for n in pair]
            total = 1 + sum(size(child, depth + 1) for child in children)
            if total > MAX_NODES:
                raise self.error(
                    node,
                    f"document expands to more than {MAX_NODES} values",
                    "aliases (*name) that repeat large anchors multiply the size",
                )
            sizes[id(node)] = total
            return total

        size(root, 0)

    def value(self, node: yaml.nodes.Node, path: JsonPath, depth: int) -> Any:
        self.count += 1
        if self.count > MAX_NODES:
            raise self.error(
                node,
                f"document expands to more than {MAX_NODES} values",
                "aliases (*name) that repeat large anchors multiply the size",
            )
        if depth > MAX_DEPTH:
            raise self.error(node, f"document nests deeper than {MAX_DEPTH} levels")
        self.marks.setdefault(path, Mark(node.start_mark.line + 1, node.start_mark.column + 1))
        if isinstance(node, yaml.nodes.MappingNode):
            if node.tag != "tag:yaml.org,2002:map":
                raise self.error(node, f"unsupported YAML tag {node.tag}", "remove the tag")
            return self.mapping(node, path, depth)
        if isinstance(node, yaml.nodes.SequenceNode) and node.tag != "tag:yaml.org,2002:seq":
            raise self.error(node, f"unsupported YAML tag {node.tag}", "remove the tag")
        if isinstance(node, yaml.nodes.SequenceNode):
            return [self.value(item, (*path, i), depth + 1) for i, item in enumerate(node.value)]
        assert isinstance(node, yaml.nodes.ScalarNode)
        return self.scalar(node, path)

    def mapping(self, node: yaml.nodes.MappingNode, path: JsonPath, depth: int) -> dict[str, Any]:
        seen: dict[str, yaml.nodes.Node] = {}
        for key_node, _ in node.value:
            if key_node.tag == _MERGE:
                continue
            key = self.key(key_node)
            if key in seen:
                first = seen[key].start_mark
                raise self.error(
                    key_node,
                    f"duplicate key '{key}' (first defined at line {first.line + 1})",
                    "remove one of the two definitions",
                )
            seen[key] = key_node
        self.merge_height(node)
        try:
            # Expands `<<: *anchor` merge keys in place; explicit keys win over merged ones.
            yaml.constructor.SafeConstructor.flatten_mapping(_FLATTENER, node)
        except yaml.constructor.ConstructorError as exc:
            raise _yaml_error(exc, self.file) from exc
        result: dict[str, Any] = {}
        for key_node, value_node in node.value:
            key = self.key(key_node)
            child = (*path, key)
            # A merged key may appear twice after flattening: the later (explicit) one wins.
            self.key_marks[child] = Mark(
                key_node.start_mark.line + 1, key_node.start_mark.column + 1
            )
            self.marks.pop(child, None)
            result.pop(key, None)
            result[key] = self.value(value_node, child, depth + 1)
        return result

    def merge_height(self, node: yaml.nodes.MappingNode, chain: int = 0) -> int:
        """How many mappings a chain of `<<` merge keys runs through below `node`, bounded:
        PyYAML's flatten_mapping recurses once per link, and anchors that each merge the
        one before it (each nesting only a little) would take it past Python's limit."""
        if id(node) in self.heights:
            height = self.heights[id(node)]
        else:
            if chain > MAX_DEPTH:
                raise self.error(node, f"merge keys (<<) chain more than {MAX_DEPTH} mappings")
            height = 0
            for key_node, value_node in node.value:
                if key_node.tag == _MERGE:
                    listed = isinstance(value_node, yaml.nodes.SequenceNode)
                    for source in value_node.value if listed else [value_node]:
                        if isinstance(source, yaml.nodes.MappingNode):
                            height = max(height, 1 + self.merge_height(source, chain + 1))
            self.heights[id(node)] = height
        if chain + height > MAX_DEPTH:
            raise self.error(node, f"merge keys (<<) chain more than {MAX_DEPTH} mappings")
        return height

    def key(self, node: yaml.nodes.Node) -> str:
        if not isinstance(node, yaml.nodes.ScalarNode):
            raise self.error(node, "mapping keys must be plain strings")
        self.check_text(node)
        return str(node.value)

    def check_text(self, node: yaml.nodes.ScalarNode) -> None:
        """No NUL (no argv, C string or file name can hold one) and no lone surrogate
        (`"\\ud800"` is not Unicode and cannot be written as UTF-8)."""
        text = node.value
        if "\0" in text:
            raise self.error(node, "a NUL character (\\0) is not allowed in holos.yaml")
        if _SURROGATE.search(text):
            raise self.error(node, "a lone surrogate (\\ud800-\\udfff) is not Unicode text")

    def scalar(self, node: yaml.nodes.ScalarNode, path: JsonPath) -> Any:
        self.check_text(node)
        text = node.value
        self.raw[path] = text
        if node.tag == _PLAIN:
            return plain_scalar(text)
        if node.tag == "tag:yaml.org,2002:str":
            self.quoted.add(path)
            return text
        if node.tag in _CORE_TAGS:
            value = plain_scalar(text)
            if not isinstance(value, _CORE_TAGS[node.tag]):
                raise self.error(node, f"'{text}' is not a valid {node.tag.rsplit(':', 1)[1]}")
            return value
        raise self.error(node, f"unsupported YAML tag {node.tag}", "remove the tag")


_FLATTENER = yaml.constructor.SafeConstructor()

_CORE_TAGS: dict[str, type | tuple[type, ...]] = {
    "tag:yaml.org,2002:int": int,
    "tag:yaml.org,2002:float": (int, float),
    "tag:yaml.org,2002:bool": bool,
    "tag:yaml.org,2002:null": type(None),
}
