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
import errno
import hashlib
import os
import re
import stat
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
from holosc.core.dotenv import parse_dotenv
from holosc.core.interpolate import interpolate_document
from holosc.errors import Diagnostic, LoadError

MAX_NODES = 200_000  # after alias expansion: bounds "billion laughs" documents
MAX_DEPTH = 64
MAX_DOTENV_BYTES = 1024 * 1024

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


def read_regular(path: Path, limit: int = MAX_FILE_BYTES) -> bytes:
    """The bytes of regular file `path`, at most `limit` of them.

    A FIFO, device or socket is refused before it is read: opening a FIFO would block
    until a writer comes, and /dev/zero never ends. The open itself does not block
    (O_NONBLOCK), and the type and size are checked again on the open file.

    :raises OSError: when the file is missing, not regular, larger than `limit`, or
        unreadable.
    """
    _check_regular(path, os.stat(path), limit)
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC)
    with os.fdopen(fd, "rb") as handle:
        _check_regular(path, os.fstat(fd), limit)
        data = handle.read(limit + 1)
    if len(data) > limit:
        raise OSError(errno.EFBIG, f"{path.name} is larger than {limit} bytes")
    return data


def _check_regular(path: Path, st: os.stat_result, limit: int) -> None:
    if stat.S_ISDIR(st.st_mode):
        raise OSError(errno.EISDIR, f"{path.name} is a directory")
    if not stat.S_ISREG(st.st_mode):
        raise OSError(errno.EINVAL, f"{path.name} is not a regular file (a FIFO or device?)")
    if st.st_size > limit:
        raise OSError(errno.EFBIG, f"{path.name} is {st.st_size} bytes; the limit is {limit}")


def load_file(
    path: Path, environ: Mapping[str, str] | None = None, *, display: str | None = None
) -> Document:
    """Read, parse and interpolate a compose file (named `display` in diagnostics).

    :raises LoadError: on I/O or YAML errors.
    :raises ValidationError: on interpolation errors (``${VAR:?message}``).
    """
    display = display or path.name
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
    env = dict(read_dotenv(path.parent / ".env"))
    env.update(os.environ if environ is None else environ)
    doc = load_text(text, file=display, directory=path.parent.resolve(), environ=env)
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
    )
    return interpolate_document(doc, {} if environ is None else environ)


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


def read_dotenv(path: Path) -> dict[str, str]:
    """Variables of a compose `.env` file (missing file: none).

    KEY=VALUE lines; `export ` prefix allowed; `#` starts a comment at line start or after
    whitespace in unquoted values; single quotes are literal; double quotes accept
    \\n, \\t, \\\\ and \\" escapes.
    """
    try:
        text = read_regular(path, MAX_DOTENV_BYTES).decode("utf-8")
    except FileNotFoundError:
        return {}
    except OSError as exc:
        message = f"cannot read file: {exc.strerror or exc}"
        raise LoadError(f"cannot read {path.name}", [Diagnostic(message, file=path.name)]) from exc
    except UnicodeDecodeError as exc:
        raise LoadError(
            f"cannot read {path.name}", [Diagnostic(f"cannot read file: {exc}", file=path.name)]
        ) from exc
    return parse_dotenv(text)
