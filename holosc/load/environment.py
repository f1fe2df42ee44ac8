"""The variables a project's files are interpolated with, as compose builds them.

A project's environment is holosc's own environment over the `.env` file beside the main
holos.yaml; each `.env` value is interpolated with holosc's environment first, then the
lines before it. An included file (include:) is interpolated with the including
project's environment over the included one's `.env` (or the env files its long syntax
names), so the including side wins, as compose-spec's include section says.
"""

from __future__ import annotations

import collections
import errno
from collections.abc import Mapping, Sequence
from pathlib import Path

from holosc.core.dotenv import DotenvError, parse_dotenv, parse_raw
from holosc.errors import Diagnostic, LoadError
from holosc.load.regular import read_regular

MAX_DOTENV_BYTES = 1024 * 1024


def project_environment(
    directory: Path, environ: Mapping[str, str], display: str = ".env"
) -> tuple[dict[str, str], tuple[Diagnostic, ...]]:
    """`environ` over the `.env` file of `directory` (missing: none), and the warnings
    of reading it.

    :raises LoadError: when the file cannot be read or has a malformed line.
    """
    values, warnings = read_env_files([(directory / ".env", display)], environ, optional=True)
    return {**values, **environ}, warnings


def read_env_files(
    files: Sequence[tuple[Path, str] | tuple[Path, str, str | None]],
    environ: Mapping[str, str],
    *,
    optional: bool = False,
) -> tuple[dict[str, str], tuple[Diagnostic, ...]]:
    """The variables of `files` (path, name shown[, format]), later files winning; each
    value is interpolated with `environ`, then the files before, then its own lines before
    (format `raw`: docker run's --env-file format, values as written).

    :raises LoadError: when a file cannot be read (a missing one is skipped when
        `optional`) or has a malformed line.
    """
    result: dict[str, str] = {}
    warnings: list[Diagnostic] = []
    for path, display, *fmt in files:
        text = _read(path, display, optional=optional)
        if text is None:
            continue
        lookup = collections.ChainMap(dict(environ), result)
        try:
            parsed = parse_raw(text, lookup) if fmt == ["raw"] else parse_dotenv(text, lookup)
        except DotenvError as exc:
            raise LoadError(
                f"invalid {display}", [Diagnostic(exc.message, file=display, line=exc.line)]
            ) from None
        result |= parsed.values
        warnings += [unset_warning(display, line, name) for line, name in parsed.unset]
    return result, tuple(dict.fromkeys(warnings))


def unset_warning(file: str, line: int, name: str) -> Diagnostic:
    return Diagnostic(
        f"variable {name} is not set; using an empty string",
        file=file,
        line=line,
        severity="warning",
        hint=f"set {name} or give a default: ${{{name}:-value}}",
    )


def _read(path: Path, display: str, *, optional: bool) -> str | None:
    try:
        return read_regular(path, MAX_DOTENV_BYTES).decode("utf-8")
    except OSError as exc:
        # compose skips a missing default .env, and one that is a directory.
        if optional and exc.errno in (errno.ENOENT, errno.EISDIR):
            return None
        message = f"cannot read file: {exc.strerror or exc}"
        raise LoadError(f"cannot read {display}", [Diagnostic(message, file=display)]) from exc
    except UnicodeDecodeError as exc:
        raise LoadError(
            f"cannot read {display}", [Diagnostic(f"cannot read file: {exc}", file=display)]
        ) from exc
