"""`include:` and `extends:` (compose 2.20 semantics): several files, one Document.

Each file is loaded and interpolated on its own, with the `.env` of its own directory.
Its relative paths are rewritten to the main project directory (where launch scripts
resolve them), and every value keeps the file and line it came from, so that errors point
there. Merging follows compose: mappings merge key by key (the extending side wins),
sequences append, except `healthcheck.test` and `vm.extra_args`, which are replaced, and
`ports` and `volumes`, where an entry of the extending side replaces the one it redefines.
"""

from __future__ import annotations

import copy
import dataclasses
import posixpath
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from holosc.core.document import Document, JsonPath
from holosc.core.images import is_local_ref
from holosc.errors import Diagnostic, HolosError, LoadError, ValidationError
from holosc.load.confine import Confinement, OutsideProject
from holosc.load.parse import load_file

Reader = Callable[[Path, str], Document]  # (path, name shown in diagnostics)
MAX_NESTING = 8
# Files included, repeats counted: eight levels of eight includes each would otherwise
# merge 8^8 files. (Each file is loaded once: `_once`.)
MAX_INCLUDES = 64
_REPLACED = {("healthcheck", "test"), ("vm", "extra_args")}


def load_project(
    path: Path,
    environ: Mapping[str, str] | None = None,
    confinement: Confinement | None = None,
) -> Document:
    """holos.yaml with its includes and extends resolved: files only inside the project
    directory unless `confinement` (by default: HOLOSC_ALLOW_PATHS) allows more.

    :raises LoadError: when a file cannot be read or parsed.
    :raises ValidationError: on every include/extends error at once.
    """
    confine = confinement or Confinement.of(path.parent)

    def read(file: Path, display: str) -> Document:
        try:
            confine.check(file)
        except OutsideProject as exc:
            message = str(exc.strerror)
            raise LoadError(message, [Diagnostic(message, file=display)]) from exc
        return load_file(file, environ, display=display)

    return assemble(load_file(path, environ), read)


def assemble(doc: Document, read: Reader) -> Document:
    out = _Out(doc)
    read = _once(read)
    out.include(doc, read, (Path(doc.file),), 0)
    out.extend_all(read)
    if out.errors:
        errors = list(dict.fromkeys(out.errors))  # a file included twice errs once
        raise ValidationError(f"{len(errors)} error(s) in {doc.file}", errors)
    return out.document()


def _once(read: Reader) -> Reader:
    """`read`, loading each file once: a file that many services extend (or that fails to
    load) is parsed once, not once per service. Callers copy what they change."""
    done: dict[tuple[Path, str], Document | HolosError] = {}

    def cached(path: Path, display: str) -> Document:
        key = (path, display)
        if key not in done:
            try:
                done[key] = read(path, display)
            except HolosError as exc:
                done[key] = exc
        result = done[key]
        if isinstance(result, HolosError):
            raise result
        return result

    return cached


class _Out:
    """The assembled document under construction: values, marks and origins by path."""

    def __init__(self, main: Document) -> None:
        self.main = main
        self.data: dict[str, Any] = dict(main.data) if isinstance(main.data, dict) else {}
        self.marks = dict(main.marks)
        self.key_marks = dict(main.key_marks)
        self.raw = dict(main.raw)
        self.quoted = set(main.quoted)
        self.origins = dict(main.origins)
        self.sources = dict(main.sources)
        self.warnings = list(main.warnings)
        self.errors: list[Diagnostic] = []
        self.includes = 0
        # Where each service was defined: its document and path there, for extends.
        self.defined: dict[str, tuple[Document, JsonPath]] = {}
        for name in self._mapping(self.data, "services"):
            self.defined[name] = (main, ("services", name))

    def document(self) -> Document:
        self.data.pop("include", None)
        return dataclasses.replace(
            self.main,
            data=self.data,
            marks=self.marks,
            key_marks=self.key_marks,
            raw=self.raw,
            quoted=frozenset(self.quoted),
            origins=self.origins,
            sources=self.sources,
            warnings=tuple(self.warnings),
        )

    @staticmethod
    def _mapping(data: dict[str, Any], key: str) -> dict[str, Any]:
        value = data.get(key)
        return value if isinstance(value, dict) else {}

    # -- include ------------------------------------------------------------------------

    def include(self, doc: Document, read: Reader, chain: tuple[Path, ...], depth: int) -> None:
        items = doc.data.get("include") if isinstance(doc.data, dict) else None
        if items is None:
            return
        if not isinstance(items, list):
            self.errors.append(doc.diagnostic(("include",), "must be a list of file paths"))
            return
        for i, item in enumerate(items):
            rel = item.get("path") if isinstance(item, dict) and len(item) == 1 else item
            if not isinstance(rel, str) or not rel:
                self.errors.append(
                    doc.diagnostic(
                        ("include", i),
                        "must be a file path or {path: FILE}",
                        hint="include: [db/holos.yaml]",
                    )
                )
                continue
            self._include_one(doc, read, chain, depth, (("include", i), rel))

    def _include_one(
        self,
        doc: Document,
        read: Reader,
        chain: tuple[Path, ...],
        depth: int,
        item: tuple[JsonPath, str],
    ) -> None:
        where, rel = item
        path = Path(posixpath.normpath(posixpath.join(_dir_of(doc.file), rel)))
        if not self._may_include(lambda message: doc.diagnostic(where, message)):
            return
        if path in chain or depth >= MAX_NESTING:
            names = " -> ".join(str(p) for p in (*chain, path))
            self.errors.append(doc.diagnostic(where, f"include cycle or too deep: {names}"))
            return
        try:
            sub = read(self.main.directory / path, str(path))
        except HolosError as exc:
            detail = exc.diagnostics[0].message if exc.diagnostics else exc.message
            self.errors += [d for d in exc.diagnostics if d.line is not None]
            if not any(d.line is not None for d in exc.diagnostics):
                self.errors.append(doc.diagnostic(where, f"cannot include {rel}: {detail}"))
            return
        self.sources |= sub.sources
        self.warnings += sub.warnings
        self.include(sub, read, (*chain, path), depth + 1)
        for section in ("services", "volumes"):
            for name in self._mapping(sub.data, section):
                self._place(sub, section, name)

    def _may_include(self, diagnostic: Callable[[str], Diagnostic]) -> bool:
        """Count one more include; past MAX_INCLUDES, one error and no more includes."""
        self.includes += 1
        if self.includes == MAX_INCLUDES + 1:
            self.errors.append(
                diagnostic(
                    f"more than {MAX_INCLUDES} files included (repeats count): "
                    "the project is too large or includes a file many times"
                )
            )
        return self.includes <= MAX_INCLUDES

    def _place(self, sub: Document, section: str, name: str) -> None:
        target = self.data.setdefault(section, {})
        if not isinstance(target, dict):
            return
        if name in target:
            first = self.origin((section, name))
            self.errors.append(
                sub.diagnostic(
                    (section, name),
                    f"{section[:-1]} '{name}' is also defined in {first}",
                    hint="rename one of them; included files cannot override each other",
                    key=True,
                )
            )
            return
        value = sub.data[section][name]
        if section == "services" and isinstance(value, dict):
            value = rebase(value, _dir_of(sub.file))
            self.defined[name] = (sub, (section, name))
        target[name] = value
        self.graft((section, name), sub, (section, name))

    def origin(self, path: JsonPath) -> str:
        return _origin(self.origins, path, self.main.file)

    # -- extends ------------------------------------------------------------------------

    def extend_all(self, read: Reader) -> None:
        services = self._mapping(self.data, "services")
        done: set[str] = set()
        for name in list(services):
            self._resolve(name, read, (), done)

    def _resolve(self, name: str, read: Reader, chain: tuple[str, ...], done: set[str]) -> None:
        services = self._mapping(self.data, "services")
        service = services.get(name)
        if name in done or not isinstance(service, dict) or "extends" not in service:
            return
        done.add(name)
        at: JsonPath = ("services", name, "extends")
        base = self._base(name, service["extends"], read, (*chain, name), done)
        del service["extends"]
        if base is None:
            return
        base_doc, base_path, base_value = base
        dst: JsonPath = ("services", name)
        self._drop_under(at)
        services[name] = self.merge(dst, (base_doc, base_path, base_value), service)

    def _base(
        self,
        name: str,
        spec: Any,
        read: Reader,
        chain: tuple[str, ...],
        done: set[str],
    ) -> tuple[Document, JsonPath, dict[str, Any]] | None:
        at: JsonPath = ("services", name, "extends")
        doc, _ = self.defined.get(name, (self.main, ()))
        if isinstance(spec, str):
            spec = {"service": spec}
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
        if "file" not in spec:
            if base_name in chain or len(chain) > MAX_NESTING:
                self.errors.append(
                    self._diag(at, f"extends cycle: {' -> '.join((*chain, base_name))}")
                )
                return None
            self._resolve(base_name, read, chain, done)
            base = self._mapping(self.data, "services").get(base_name)
            if not isinstance(base, dict):
                self.errors.append(self._diag(at, f"extends unknown service '{base_name}'"))
                return None
            return self._snapshot(("services", base_name)), ("services", base_name), base
        rel = posixpath.normpath(posixpath.join(_dir_of(doc.file), spec["file"]))
        try:
            other = read(self.main.directory / rel, rel)
        except HolosError as exc:
            detail = exc.diagnostics[0].message if exc.diagnostics else exc.message
            self.errors.append(self._diag(at, f"cannot read {spec['file']}: {detail}"))
            return None
        self.sources |= other.sources
        base = self._mapping(other.data, "services").get(base_name)
        if not isinstance(base, dict):
            self.errors.append(self._diag(at, f"{rel} has no service '{base_name}'"))
            return None
        if "extends" in base:
            self.errors.append(
                self._diag(at, f"'{base_name}' in {rel} extends again; holosc follows one level")
            )
            return None
        # A copy: the merge changes it, and the next service extending `base` reads it too.
        return other, ("services", base_name), rebase(copy.deepcopy(base), _dir_of(rel))

    def _diag(self, path: JsonPath, message: str) -> Diagnostic:
        return self.document_view().diagnostic(path, message)

    def document_view(self) -> Document:
        return dataclasses.replace(
            self.main, marks=self.marks, key_marks=self.key_marks, origins=self.origins
        )

    def _snapshot(self, path: JsonPath) -> Document:
        """A copy of the assembled document as it is now, to copy marks of `path` from."""
        return dataclasses.replace(
            self.main,
            marks=dict(self.marks),
            key_marks=dict(self.key_marks),
            raw=dict(self.raw),
            quoted=frozenset(self.quoted),
            origins=dict(self.origins),
        )

    # -- merging and marks ----------------------------------------------------------------

    def merge(
        self,
        dst: JsonPath,
        base: tuple[Document, JsonPath, Any],
        over: Any,
        rel: tuple[str, ...] = (),
    ) -> Any:
        """compose's merge of `over` onto `base`; marks of `over` are already at `dst`."""
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
            redefined = {_identity(rel, o) for o in over}
            kept = [(i, v) for i, v in enumerate(base_value) if _identity(rel, v) not in redefined]
            self._shift(dst, len(kept))
            for new, (old, _) in enumerate(kept):
                self.graft((*dst, new), base_doc, (*base_path, old))
            return [v for _, v in kept] + over
        return over

    def _tables(self) -> tuple[dict[JsonPath, Any], ...]:
        return (self.marks, self.key_marks, self.raw, self.origins)

    def _shift(self, dst: JsonPath, by: int) -> None:
        """Move the marks of list items under `dst` down by `by` places."""
        n = len(dst)

        def moved(p: JsonPath) -> JsonPath:
            index = p[n] if len(p) > n and p[:n] == dst else None
            return (*dst, index + by, *p[n + 1 :]) if isinstance(index, int) else p

        if by:
            for table in self._tables():
                items = list(table.items())
                table.clear()
                table.update((moved(p), v) for p, v in items)
            self.quoted = {moved(p) for p in self.quoted}

    def _drop_under(self, path: JsonPath) -> None:
        n = len(path)
        for table in self._tables():
            for p in [p for p in table if p[:n] == path]:
                del table[p]

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
            self.origins[dst] = _origin(src.origins, path, src.file)


def _origin(origins: Mapping[JsonPath, str], path: JsonPath, default: str) -> str:
    for n in range(len(path), -1, -1):
        if path[:n] in origins:
            return origins[path[:n]]
    return default


def _identity(rel: tuple[str, ...], value: Any) -> Any:
    """What makes a list entry the same entry: a volume's target, a port's guest side."""
    if rel[-1:] == ("volumes",) and isinstance(value, str):
        parts = value.split(":")
        return ("volume", parts[1] if len(parts) > 1 else parts[0])
    if rel[-1:] == ("ports",):
        return ("port", str(value))
    return ("item", id(value))


def _dir_of(file: str) -> str:
    return posixpath.dirname(file)


def rebase(service: dict[str, Any], directory: str) -> dict[str, Any]:
    """`service` with its relative host paths made relative to the main project directory."""
    if not directory:
        return service

    def move(path: str) -> str:
        if path.startswith(("/", "~")):
            return path
        joined = posixpath.normpath(posixpath.join(directory, path))
        return joined if joined.startswith("../") else "./" + joined

    result = dict(service)
    for key in ("dockerfile", "env_file"):
        if isinstance(result.get(key), str):
            result[key] = move(result[key])
    if isinstance(result.get("image"), str) and is_local_ref(result["image"]):
        result["image"] = move(result["image"])
    if isinstance(result.get("vm"), dict):
        vm = dict(result["vm"])
        for key in ("kernel", "initrd"):
            if isinstance(vm.get(key), str):
                vm[key] = move(vm[key])
        result["vm"] = vm
    if isinstance(result.get("volumes"), list):
        result["volumes"] = [_rebase_volume(v, move) for v in result["volumes"]]
    if isinstance(result.get("devices"), list):
        result["devices"] = [
            d | {"rom_file": move(d["rom_file"])}
            if isinstance(d, dict) and isinstance(d.get("rom_file"), str)
            else d
            for d in result["devices"]
        ]
    return result


def _rebase_volume(spec: Any, move: Callable[[str], str]) -> Any:
    if not isinstance(spec, str) or ":" not in spec:
        return spec
    source, rest = spec.split(":", 1)
    if source in (".", "..") or "/" in source:
        return f"{move(source)}:{rest}"
    return spec  # a named volume
