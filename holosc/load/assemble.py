"""`include:` and `extends:` (compose semantics): several files, one Document.

Each file is read once and interpolated with its project's environment: the main file
and the files it extends with the project's (holosc's environment over `.env`), an
included file with the including project's over its own `.env` (or its long syntax's
`env_file`). Relative paths are the file's own (holosc.load.paths rewrites them to the
main project directory); every value keeps the file and line it came from, so that errors
point there. Services merge with compose's rules (holosc.load.tree). A service, volume or
secret that an included file defines and the including file (or an earlier include)
defines too is merged, the including side winning, as compose-go's include does: one file
reached by two routes is no conflict, and a project can adjust what it includes.
"""

from __future__ import annotations

import copy
import dataclasses
import posixpath
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from holosc.core.document import Document, JsonPath
from holosc.errors import Diagnostic, HolosError, LoadError, ValidationError
from holosc.load.confine import Confinement, OutsideProject
from holosc.load.environment import read_env_files
from holosc.load.parse import load_file, read_compose
from holosc.load.paths import rebase_file
from holosc.load.tree import Tree

# (path, name shown in diagnostics, environment it is interpolated with)
Reader = Callable[[Path, str, Mapping[str, str]], Document]
Check = Callable[[Path, str], None]  # raises LoadError for a file the project may not read
MAX_NESTING = 8
# Files included, repeats counted: eight levels of eight includes each would otherwise
# merge 8^8 files. (Each file is loaded once: `_once`.)
MAX_INCLUDES = 64
_SECTIONS = ("services", "volumes", "secrets")
Chain = tuple[tuple[str, str], ...]  # (file, service) of the extends being resolved


def load_project(
    path: Path,
    environ: Mapping[str, str] | None = None,
    confinement: Confinement | None = None,
) -> Document:
    """holos.yaml with its includes and extends resolved: other files only inside the
    project directory unless `confinement` (by default: HOLOSC_ALLOW_PATHS) allows more.

    :raises LoadError: when a file cannot be read or parsed.
    :raises ValidationError: on every include/extends error at once.
    """
    confine = confinement or Confinement.of(path.parent)

    def check(file: Path, display: str) -> None:
        try:
            confine.check(file)
        except OutsideProject as exc:
            message = str(exc.strerror)
            raise LoadError(message, [Diagnostic(message, file=display)]) from exc

    def read(file: Path, display: str, env: Mapping[str, str]) -> Document:
        check(file, display)
        return read_compose(file, env, display=display)

    return assemble(load_file(path, environ), read, check)


def assemble(doc: Document, read: Reader, check: Check | None = None) -> Document:
    """`doc` with what it includes and extends; `read` reads those files, and `check`
    refuses the env files of an include that `read` would refuse."""
    files = _Files(doc.directory, read, check or (lambda _path, _display: None))
    out = _Out(doc, files)
    out.include(doc, (posixpath.normpath(doc.file),), 0)
    out.extend_all()
    errors = list(dict.fromkeys(out.errors + files.errors))  # a file reached twice errs once
    if errors:
        raise ValidationError(f"{len(errors)} error(s) in {doc.file}", errors)
    return out.document()


class _Files:
    """The files other than the main one, each read and rebased once per environment."""

    def __init__(self, directory: Path, read: Reader, check: Check) -> None:
        self.directory = directory
        self.read = read
        self.check = check
        self.done: dict[tuple[str, str, frozenset[tuple[str, str]]], Document | HolosError] = {}
        self.trees: dict[tuple[str, frozenset[tuple[str, str]]], _Out] = {}
        self.errors: list[Diagnostic] = []
        self.includes = 0

    def get(self, rel: str, env: Mapping[str, str], base_dir: str) -> Document:
        """`rel` (relative to the main directory) read with `env`, its paths rebased
        from `base_dir`.

        :raises HolosError: when it cannot be read.
        """
        key = (rel, base_dir, frozenset(env.items()))
        if key not in self.done:
            try:
                doc = self.read(self.directory / rel, rel, env)
                self.done[key] = dataclasses.replace(doc, data=rebase_file(doc.data, base_dir))
            except HolosError as exc:
                self.done[key] = exc
        result = self.done[key]
        if isinstance(result, HolosError):
            raise result
        return result


class _Out(Tree):
    """The assembled document under construction."""

    def __init__(self, main: Document, files: _Files) -> None:
        super().__init__(main)
        self.files = files
        self.sources = dict(main.sources)
        self.warnings = list(main.warnings)
        self.errors: list[Diagnostic] = []
        # Where each service was defined (its document), for extends.
        self.defined: dict[str, Document] = {}
        for name in _mapping(self.data, "services"):
            self.defined[name] = main
        self.resolved: set[str] = set()

    def document(self) -> Document:
        self.data.pop("include", None)
        return dataclasses.replace(
            self.view(), sources=self.sources, warnings=tuple(dict.fromkeys(self.warnings))
        )

    def _diag(self, path: JsonPath, message: str, hint: str | None = None) -> Diagnostic:
        return self.view().diagnostic(path, message, hint=hint)

    # -- include ------------------------------------------------------------------------

    def include(self, doc: Document, chain: tuple[str, ...], depth: int) -> None:
        items = doc.data.get("include") if isinstance(doc.data, dict) else None
        if items is None:
            return
        if not isinstance(items, list):
            self.errors.append(doc.diagnostic(("include",), "must be a list of file paths"))
            return
        for i, item in enumerate(items):
            spec = _IncludeSpec.of(item)
            if spec is None:
                self.errors.append(
                    doc.diagnostic(
                        ("include", i),
                        "must be a file path or {path, project_directory, env_file}",
                        hint="include: [db/holos.yaml]",
                    )
                )
                continue
            self._include_one(doc, chain, depth, ("include", i), spec)

    def _include_one(
        self, doc: Document, chain: tuple[str, ...], depth: int, where: JsonPath, spec: _IncludeSpec
    ) -> None:
        if not self._may_include(lambda message: doc.diagnostic(where, message)):
            return
        for path in spec.paths:
            if path in chain or depth >= MAX_NESTING:
                names = " -> ".join((*chain, path))
                self.errors.append(doc.diagnostic(where, f"include cycle or too deep: {names}"))
                return
        try:
            env, warnings = self._include_environment(doc, spec)
            subs = [self.files.get(p, env, spec.directory) for p in spec.paths]
        except HolosError as exc:
            self._report(doc, where, spec.paths[0], exc)
            return
        self.warnings += warnings
        for path, sub in zip(spec.paths, subs, strict=True):
            self.sources |= sub.sources
            self.warnings += sub.warnings
            self.include(sub, (*chain, path), depth + 1)
        merged = subs[0]
        if len(subs) > 1:
            tree = _Out(subs[0], self.files)
            for over in subs[1:]:
                tree.override(over)
            self.errors += tree.errors
            merged = tree.document()
        for section in _SECTIONS:
            for name in _mapping(merged.data, section):
                self._place(merged, section, name)

    def _include_environment(
        self, doc: Document, spec: _IncludeSpec
    ) -> tuple[dict[str, str], tuple[Diagnostic, ...]]:
        """The including project's environment over the included one's env files."""
        root = self.files.directory
        if spec.env_files is None:
            dotenv = posixpath.join(spec.directory, ".env")
            files = [(root / dotenv, posixpath.normpath(dotenv))]
            for path, display in files if (root / dotenv).exists() else []:
                self.files.check(path, display)
            values, warnings = read_env_files(files, doc.environ, optional=True)
        else:
            present = [
                (root / p, posixpath.normpath(p), fmt)
                for p, required, fmt in spec.env_files
                if required or (root / p).exists()
            ]
            for path, display, _ in present:
                self.files.check(path, display)
            values, warnings = read_env_files(present, doc.environ)
        return {**values, **doc.environ}, warnings

    def _report(self, doc: Document, where: JsonPath, rel: str, exc: HolosError) -> None:
        positioned = [d for d in exc.diagnostics if d.line is not None]
        self.errors += positioned
        if not positioned:
            first = exc.diagnostics[0] if exc.diagnostics else None
            detail = first.message if first else exc.message
            if first and first.file != rel:  # an env file of the include
                detail = f"{first.file}: {detail}"
            self.errors.append(doc.diagnostic(where, f"cannot include {rel}: {detail}"))

    def _may_include(self, diagnostic: Callable[[str], Diagnostic]) -> bool:
        """Count one more include; past MAX_INCLUDES, one error and no more includes."""
        self.files.includes += 1
        if self.files.includes == MAX_INCLUDES + 1:
            self.errors.append(
                diagnostic(
                    f"more than {MAX_INCLUDES} files included (repeats count): "
                    "the project is too large or includes a file many times"
                )
            )
        return self.files.includes <= MAX_INCLUDES

    def _place(self, sub: Document, section: str, name: str) -> None:
        if self.data.get(section) is None:  # missing or empty (`services:`)
            self.data[section] = {}
        target = self.data[section]
        if not isinstance(target, dict):
            return
        value = sub.data[section][name]
        if name in target:
            # compose-go's include: the definition already here (the including file's,
            # or an earlier include's) is merged onto the included one.
            at: JsonPath = (section, name)
            target[name] = self.merge(at, (sub, at, copy.deepcopy(value)), target[name])
            return
        if section == "services":
            self.defined[name] = sub
        target[name] = copy.deepcopy(value)
        self.graft((section, name), sub, (section, name))

    def override(self, over: Document) -> None:
        """Merge the services, volumes and secrets of `over` onto this tree (an include's
        list of paths: later files override earlier ones)."""
        for section in _SECTIONS:
            target = self.data.setdefault(section, {})
            for name, value in _mapping(over.data, section).items():
                at: JsonPath = (section, name)
                if name not in target:
                    target[name] = copy.deepcopy(value)
                    self.graft(at, over, at)
                    if section == "services":
                        self.defined[name] = over
                    continue
                base = (self.snapshot(), at, target[name])
                self.drop_under(at)
                self.graft(at, over, at)
                target[name] = self.merge(at, base, copy.deepcopy(value))
        self.sources |= over.sources

    # -- extends ------------------------------------------------------------------------

    def extend_all(self) -> None:
        for name in list(_mapping(self.data, "services")):
            self.resolve(name, ())

    def resolve(self, name: str, chain: Chain) -> None:
        """Merge `name` onto the service it extends (resolved first), in place."""
        services = _mapping(self.data, "services")
        service = services.get(name)
        if name in self.resolved or not isinstance(service, dict) or "extends" not in service:
            return
        self.resolved.add(name)
        here = (*chain, (self.main.file, name))
        base = self._base(name, service["extends"], here)
        del service["extends"]
        self.drop_under(("services", name, "extends"))
        if base is not None:
            services[name] = self.merge(("services", name), base, service)

    def _base(
        self, name: str, spec: Any, chain: Chain
    ) -> tuple[Document, JsonPath, dict[str, Any]] | None:
        at: JsonPath = ("services", name, "extends")
        spec = {"service": spec} if isinstance(spec, str) else spec
        if not isinstance(spec, dict) or not isinstance(spec.get("service"), str):
            self.errors.append(
                self._diag(at, "must be a service name or {service: NAME, file: FILE}")
            )
            return None
        unknown = sorted(set(spec) - {"service", "file"})
        if unknown or not isinstance(spec.get("file", ""), str):
            self.errors.append(
                self._diag(at, f"unknown or invalid key '{(unknown or ['file'])[0]}'")
            )
            return None
        base_name: str = spec["service"]
        tree: _Out | None = self._tree(name, spec["file"], at) if "file" in spec else self
        if tree is None:
            return None
        if (tree.main.file, base_name) in chain or len(chain) > MAX_NESTING:
            names = " -> ".join(_names((*chain, (tree.main.file, base_name)), self.main.file))
            self.errors.append(self._diag(at, f"extends cycle: {names}"))
            return None
        tree.resolve(base_name, chain)
        if tree is not self:
            self.errors += tree.errors
            tree.errors = []
        base = _mapping(tree.data, "services").get(base_name)
        if not isinstance(base, dict):
            message = (
                f"extends unknown service '{base_name}'"
                if tree is self
                else f"{tree.main.file} has no service '{base_name}'"
            )
            self.errors.append(self._diag(at, message))
            return None
        # A copy: the merge changes it, and the next service extending `base` reads it too.
        return tree.snapshot(), ("services", base_name), copy.deepcopy(base)

    def _tree(self, name: str, file: str, at: JsonPath) -> _Out | None:
        """The file `extends` names, read with the environment of `name`'s project."""
        rel = posixpath.normpath(file)
        env = self.defined.get(name, self.main).environ
        key = (rel, frozenset(env.items()))
        if key not in self.files.trees:
            try:
                other = self.files.get(rel, env, posixpath.dirname(rel))
            except HolosError as exc:
                detail = exc.diagnostics[0].message if exc.diagnostics else exc.message
                self.errors.append(self._diag(at, f"cannot read {file}: {detail}"))
                return None
            self.sources |= other.sources
            self.files.trees[key] = _Out(other, self.files)
        return self.files.trees[key]


@dataclasses.dataclass(frozen=True)
class _IncludeSpec:
    """One `include:` entry: its file(s), project directory and env files (None: the
    project directory's `.env`), all relative to the main project directory."""

    paths: tuple[str, ...]
    directory: str
    env_files: tuple[tuple[str, bool, str | None], ...] | None  # (path, required, format)

    @classmethod
    def of(cls, item: Any) -> _IncludeSpec | None:
        if isinstance(item, str) and item:
            item = {"path": item}
        if not isinstance(item, dict) or set(item) - {"path", "project_directory", "env_file"}:
            return None
        raw = item.get("path")
        paths = [raw] if isinstance(raw, str) else raw
        if not isinstance(paths, list) or not paths:
            return None
        if not all(isinstance(p, str) and p for p in paths):
            return None
        normal = tuple(posixpath.normpath(p) for p in paths)
        directory = item.get("project_directory", posixpath.dirname(normal[0]))
        if not isinstance(directory, str):
            return None
        env_files = _env_file_list(item["env_file"]) if "env_file" in item else None
        if "env_file" in item and env_files is None:
            return None
        return cls(normal, posixpath.normpath(directory) if directory else "", env_files)


def _env_file_list(value: Any) -> tuple[tuple[str, bool, str | None], ...] | None:
    """An include's `env_file`: a path, or a list of paths or `{path, required, format}`."""
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, list):
        return None
    result: list[tuple[str, bool, str | None]] = []
    for item in items:
        if isinstance(item, str) and item:
            result.append((item, True, None))
        elif isinstance(item, dict) and isinstance(item.get("path"), str):
            fmt = item.get("format") if isinstance(item.get("format"), str) else None
            result.append((item["path"], item.get("required", True) is not False, fmt))
        else:
            return None
    return tuple(result)


def _mapping(data: Any, key: str) -> dict[str, Any]:
    value = data.get(key) if isinstance(data, dict) else None
    return value if isinstance(value, dict) else {}


def _names(chain: Chain, main: str) -> list[str]:
    return [name if file == main else f"{file}:{name}" for file, name in chain]
