"""Shared pieces of the commands: options, loading a project, printing diagnostics."""

from __future__ import annotations

import dataclasses
import enum
import os
import sys
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, NoReturn

import typer
from holos_runtime.terminal import terminal_safe as terminal_safe  # the one, re-exported

from holosc.cli import streams
from holosc.errors import Diagnostic, ExitCode, HolosError, RuntimeCommandError, ValidationError

if TYPE_CHECKING:
    from holosc.core.compiler import Output
    from holosc.core.document import Document
    from holosc.core.lock import Lock
    from holosc.core.model import Project

# The loader, validator and compiler are imported by the functions that use them, so
# commands that never read holos.yaml (ps, --help) start without them.

FileOption = Annotated[
    Path | None,
    typer.Option(
        "--file", "-f", help="Compose file (default: holos.yaml or holos.yml here).", dir_okay=False
    ),
]
# `logs` keeps -f for --follow (as `docker compose logs -f`); its file is --file only.
LongFileOption = Annotated[
    Path | None,
    typer.Option(
        "--file", help="Compose file (default: holos.yaml or holos.yml here).", dir_okay=False
    ),
]
SshKeyOption = Annotated[
    Path | None,
    typer.Option(
        "--ssh-key",
        envvar="HOLOSC_SSH_KEY",
        help="Project private key to use on this host (copied with its KEY.pub into the "
        "state directory); default: generated once there. Never compiled in.",
    ),
]


@dataclasses.dataclass(frozen=True)
class Loaded:
    file: Path
    doc: Document
    project: Project
    warnings: tuple[Diagnostic, ...]


def compose_path(file: Path | None) -> Path:
    from holosc.load.parse import find_compose_file

    return file if file is not None else find_compose_file(Path.cwd())


def load(
    file: Path | None,
    *,
    ssh_key: Path | None = None,
    with_key: bool = False,
    state_root: Path | None = None,
) -> Loaded:
    """Load and validate; with `with_key`, make sure this host has the project key pair
    (the units pass it to the guests at start; nothing of it is compiled).

    :raises HolosError: on any invalid input.
    """
    from holosc.core.validate.checks import build_project
    from holosc.host import keys, systemd
    from holosc.load.assemble import load_project
    from holosc.load.confine import Confinement
    from holosc.load.files import HostFiles
    from holosc.tools import devices

    path = compose_path(file)
    confinement = Confinement.of(path.parent)  # HOLOSC_ALLOW_PATHS of this process only
    doc = load_project(path, confinement=confinement)
    result = build_project(doc, HostFiles(confinement), profiles=active_profiles(doc.environ))
    if with_key:
        root = state_root or systemd.manager().state_dir
        # %S/holos of the default scope's manager unless the caller knows the manager.
        private = ssh_key or keys.key_path(root, result.project.name)
        keys.ensure_key(private, result.project.name)
        if ssh_key:
            keys.adopt_key(ssh_key, root, result.project.name)
    # Host checks for PCI passthrough are warnings: the project may run on another host.
    sysfs = Path(os.environ.get("HOLOSC_SYSFS_ROOT") or "/sys")
    host = devices.device_warnings(result.project, sysfs, doc=doc)
    return Loaded(path, doc, result.project, (*result.warnings, *host))


def compile_loaded(loaded: Loaded, previous: Lock | None = None) -> Output:
    """Compile; `previous` is the lock of what this build replaces (committed output or
    the installed project), so its instances keep their addresses and ports."""
    from holosc.core.compiler import compile_project

    return compile_project(loaded.project, {loaded.file.name: loaded.doc.sha256}, previous)


class Color(enum.StrEnum):
    AUTO = "auto"
    ALWAYS = "always"
    NEVER = "never"


color = Color.AUTO  # set once by the global --color option
profiles: tuple[str, ...] | None = None  # set once by the global --profile option
quiet = False  # set once by the global -q/--quiet option


def note(line: str) -> None:
    """Progress and summaries on stderr; -q silences them (never warnings or errors).
    Lines may quote a guest (a build step's output): they pass `terminal_safe`."""
    if not quiet:
        print(terminal_safe(line), file=sys.stderr, flush=True)


def set_profiles(given: list[str] | None) -> None:
    """The --profile options (None: none given; the project environment decides)."""
    global profiles
    if given is not None:
        _check_profiles(given, "--profile")
    profiles = None if given is None else tuple(given)


def active_profiles(environ: Mapping[str, str]) -> tuple[str, ...]:
    """--profile, else HOLOS_PROFILES, else compose's COMPOSE_PROFILES, each read from the
    project environment (holosc's own over .env), comma-separated; `*` enables all.

    :raises ValidationError: for a name that is no profile name.
    """
    if profiles is not None:
        return profiles
    for variable in ("HOLOS_PROFILES", "COMPOSE_PROFILES"):
        if variable in environ:
            names = [p.strip() for p in environ[variable].split(",") if p.strip()]
            _check_profiles(names, variable)
            return tuple(names)
    return ()


def _check_profiles(names: list[str], source: str) -> None:
    from holosc.core.validate.checker import PROFILE

    for name in names:
        if name != "*" and not PROFILE.fullmatch(name):
            message = f"'{name}' is not a profile name (letters, digits, '_', '.', '-')"
            if source == "--profile":
                raise typer.BadParameter(message, param_hint="--profile")
            raise ValidationError(message, [Diagnostic(message, file=source)])


def print_diagnostics(diagnostics: Iterable[Diagnostic]) -> None:
    """The one-line form first (editors and CI parse it); on a terminal, the source line
    with a caret under the column below it."""
    snippets = color is Color.ALWAYS or (color is Color.AUTO and sys.stderr.isatty())
    ansi = snippets and color is not Color.NEVER and "NO_COLOR" not in os.environ
    for diag in diagnostics:
        print(diag, file=sys.stderr)
        snippet = diag.snippet() if snippets else None
        if snippet:
            if ansi:
                text, caret = snippet.rsplit("\n", 1)
                mark = "\033[1;31m" if diag.severity == "error" else "\033[1;33m"
                streams.control(f"{text}\n{caret[:-1]}{mark}^\033[0m\n")
            else:
                print(snippet, file=sys.stderr)


def fail(exc: HolosError) -> NoReturn:
    """Print a HolosError's diagnostics (or message) and exit with its code."""
    if exc.diagnostics:
        print_diagnostics(exc.diagnostics)
        errors = sum(d.severity == "error" for d in exc.diagnostics)
        if errors > 1:
            print(f"holosc: {errors} errors", file=sys.stderr)
    else:
        print(f"holosc: error: {terminal_safe(exc.message)}", file=sys.stderr)
    raise typer.Exit(int(exc.exit_code))


def replace_process(argv: list[str], package: str) -> NoReturn:
    """Become `argv` (ssh, journalctl): their exit code is the command's; a missing or
    unrunnable program is a runtime error (exit 5), never a traceback."""
    try:
        os.execvp(argv[0], argv)
    except OSError as exc:
        message = f"cannot run {argv[0]}: {exc.strerror}"
        fail(
            RuntimeCommandError(
                message, [Diagnostic(message, file="holosc", hint=f"install {package}")]
            )
        )


def exit_on_warnings(warnings: tuple[Diagnostic, ...], strict: bool) -> None:
    print_diagnostics(warnings)
    if strict and warnings:
        print("holosc: warnings are errors (--strict)", file=sys.stderr)
        raise typer.Exit(int(ExitCode.INVALID))
