"""Every host path a compose file names, resolved relative to the file that wrote it.

The one place that knows which fields are paths. A file reached through `include:` or
`extends: {file:}` has its relative paths rewritten here, when it is read, to paths
relative to the main project directory (where the compiler and the launch scripts resolve
them); the main file's own paths are already so. So a check on where a path leads (for
example that an env file stays inside the project) sees every path in one form.

Path fields: services' `dockerfile`, `env_file` (a string, a list of strings, or of
`{path: ...}`), `image` when it is a local path, `vm.kernel`, `vm.initrd`, bind-mount
sources in `volumes`, `devices[].rom_file` and `extends.file`; top-level `secrets.*.file`;
`include` entries' `path`, `project_directory` and `env_file`. Absolute paths and `~`
paths are kept.
"""

from __future__ import annotations

import posixpath
from collections.abc import Callable
from typing import Any

from holosc.core.images import is_local_ref

Move = Callable[[str], str]


def mover(directory: str) -> Move:
    """A function taking a path relative to `directory` (itself relative to the main
    project directory) to one relative to the main project directory."""

    def move(path: str) -> str:
        if not directory or path.startswith(("/", "~")):
            return path
        joined = posixpath.normpath(posixpath.join(directory, path))
        return joined if joined in (".", "..") or joined.startswith("../") else "./" + joined

    return move


def rebase_file(data: Any, directory: str) -> Any:
    """`data`, a whole compose file's values, with its paths made relative to the main
    project directory (`directory` is where the file's own paths start from)."""
    if not directory or not isinstance(data, dict):
        return data
    move = mover(directory)
    result = dict(data)
    services = result.get("services")
    if isinstance(services, dict):
        result["services"] = {
            name: rebase_service(spec, move) if isinstance(spec, dict) else spec
            for name, spec in services.items()
        }
    secrets = result.get("secrets")
    if isinstance(secrets, dict):
        result["secrets"] = {
            name: _with(spec, "file", move) if isinstance(spec, dict) else spec
            for name, spec in secrets.items()
        }
    if isinstance(result.get("include"), list):
        result["include"] = [_include(item, move) for item in result["include"]]
    return result


def rebase_service(service: dict[str, Any], move: Move) -> dict[str, Any]:
    result = _with(service, "dockerfile", move)
    if "env_file" in result:
        result["env_file"] = env_files(result["env_file"], move)
    if isinstance(result.get("image"), str) and is_local_ref(result["image"]):
        result["image"] = move(result["image"])
    if isinstance(result.get("vm"), dict):
        result["vm"] = _with(_with(result["vm"], "kernel", move), "initrd", move)
    if isinstance(result.get("volumes"), list):
        result["volumes"] = [_volume(v, move) for v in result["volumes"]]
    if isinstance(result.get("devices"), list):
        result["devices"] = [
            _with(d, "rom_file", move) if isinstance(d, dict) else d for d in result["devices"]
        ]
    if isinstance(result.get("extends"), dict):
        result["extends"] = _with(result["extends"], "file", move)
    return result


def env_files(value: Any, move: Move) -> Any:
    """An `env_file` value (string, list of strings or `{path: ...}`) with paths moved."""
    if isinstance(value, str):
        return move(value)
    if isinstance(value, list):
        return [
            move(v) if isinstance(v, str) else _with(v, "path", move) if isinstance(v, dict) else v
            for v in value
        ]
    return value


def _include(item: Any, move: Move) -> Any:
    if isinstance(item, str):
        return move(item)
    if not isinstance(item, dict):
        return item
    result = dict(item)
    if isinstance(result.get("path"), str):
        result["path"] = move(result["path"])
    elif isinstance(result.get("path"), list):
        result["path"] = [move(p) if isinstance(p, str) else p for p in result["path"]]
    result = _with(result, "project_directory", move)
    if "env_file" in result:
        result["env_file"] = env_files(result["env_file"], move)
    return result


def _with(mapping: dict[str, Any], key: str, move: Move) -> dict[str, Any]:
    result = dict(mapping)
    if isinstance(result.get(key), str):
        result[key] = move(result[key])
    return result


def _volume(spec: Any, move: Move) -> Any:
    if not isinstance(spec, str) or ":" not in spec:
        return spec
    source, rest = spec.split(":", 1)
    if source in (".", "..") or "/" in source:
        return f"{move(source)}:{rest}"
    return spec  # a named volume
