"""Turn a Dockerfile into a build: one step per RUN, COPY and ADD for the builder VM.

FROM, RUN, COPY, ADD of a local file or archive, ENV, ARG, WORKDIR and SHELL are
converted. Instructions that describe a container, not a VM (CMD, EXPOSE, ...), are
skipped with a warning; the rest (USER, heredocs, multi-stage, ADD of a URL, a word that
is no Docker instruction) are errors with a hint. docs/format.md has the table. COPY and
ADD sources are read from the build context (the Dockerfile's directory) and may not
escape it.

Each step is a POSIX sh script that holos-bake runs as root in the builder VM (COPY's
file content is its standard input): the ENV and ARG values in effect exported, the
WORKDIR made and entered, then the command. The same instructions also convert to the
first-boot form (one script plus files for cloud-init), which the cluster export uses: a
cluster has no builder.

`$VAR` and `${VAR}` (with `:-`, `:+`, `-`, `+`) in ENV, ARG, WORKDIR, COPY and ADD are
expanded as Docker does: a variable an earlier ENV or ARG set is replaced by its value
(the last one set wins; an ARG is not kept in the image). In ENV and ARG values, a
variable nothing set (`PATH` in `ENV PATH=/opt/bin:$PATH`) comes from the base image's
environment in Docker; here the guest's environment provides it, so it stays a reference
that the build script's shell expands. WORKDIR and COPY paths must not use one.
"""

from __future__ import annotations

import base64
import bz2
import dataclasses
import difflib
import json
import lzma
import posixpath
import re
import shlex
import tarfile
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path, PurePosixPath
from typing import NamedTuple

from holos_runtime.terminal import terminal_safe

from holosc.core.files import Files
from holosc.core.model import Build, BuildStep, Provisioning, WriteFile
from holosc.core.render.escape import shell_command, shell_word

SCRIPT_PATH = "/var/lib/holos/build.sh"

# Every instruction word of Docker's Dockerfile reference.
INSTRUCTIONS = (
    "ADD", "ARG", "CMD", "COPY", "ENTRYPOINT", "ENV", "EXPOSE", "FROM", "HEALTHCHECK",
    "LABEL", "MAINTAINER", "ONBUILD", "RUN", "SHELL", "STOPSIGNAL", "USER", "VOLUME",
    "WORKDIR",
)  # fmt: skip

# Instructions about containers that mean nothing for a VM: skipped, with where holosc
# does the same thing.
_SKIPPED = {
    "CMD": "use cloud_init.runcmd or a systemd unit in the guest",
    "ENTRYPOINT": "use cloud_init.runcmd or a systemd unit in the guest",
    "EXPOSE": "publish ports with services.<name>.ports",
    "HEALTHCHECK": "use services.<name>.healthcheck",
    "LABEL": "a VM image has no labels; keep the note as a comment",
    "MAINTAINER": "a VM image has no labels; keep the note as a comment",
    "ONBUILD": "nothing is built FROM a holosc image; write the instruction where it applies",
    "STOPSIGNAL": "a guest stops by ACPI shutdown; see services.<name>.stop_grace_period",
    "VOLUME": "use services.<name>.volumes",
}
_USER_HINT = (
    "RUN steps run as root in the builder VM: use RUN runuser -u NAME -- COMMAND; "
    "the login user is cloud_init.user"
)
_HEREDOC_HINT = "put the script in a file beside the Dockerfile, COPY it and RUN it"
_ARG_BEFORE_FROM_HINT = (
    "holosc has no --build-arg, so FROM cannot vary: write the image in FROM, "
    "and declare build variables after it"
)


_ENV_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*\Z")
_MODE = re.compile(r"^[0-7]{3,4}\Z")
_OWNER_PART = r"([a-z_][a-z0-9_-]{0,31}|[0-9]{1,10})"
_OWNER = re.compile(rf"^{_OWNER_PART}(:{_OWNER_PART})?\Z")


_KEY_NAME = re.compile(r"^(id_(rsa|dsa|ecdsa|ed25519)(_sk)?|.*\.(pem|key|p12|pfx))\Z", re.I)
_PRIVATE_KEY = re.compile(r"-----BEGIN [A-Z0-9 ]*PRIVATE KEY( BLOCK)?-----")


def looks_like_key(name: str, content: str) -> bool:
    """A private key by its file name (id_rsa, *.pem, *.key) or a PEM/OpenSSH/PGP header."""
    return bool(_KEY_NAME.match(name) or _PRIVATE_KEY.search(content))


class DockerfileError(ValueError):
    """A line that cannot be converted; the message and hint are for the user."""

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.hint = hint


@dataclasses.dataclass(frozen=True, slots=True)
class EnvRef:
    """`${name<op>word}` of a variable nothing set earlier: the guest's shell expands it."""

    name: str
    op: str = ""
    word: tuple[str | EnvRef, ...] = ()


Word = tuple[str | EnvRef, ...]  # literal text and references, concatenated


@dataclasses.dataclass(frozen=True, slots=True)
class Finding:
    """An error or warning about one Dockerfile line."""

    line: int
    message: str
    severity: str = "error"
    hint: str | None = None


@dataclasses.dataclass(frozen=True, slots=True)
class Converted:
    base_image: str | None
    build: Build
    findings: tuple[Finding, ...]


@dataclasses.dataclass(slots=True)
class _State:
    """What the instructions read so far have set."""

    context: Path
    files: Files
    findings: list[Finding] = dataclasses.field(default_factory=list)
    froms: int = 0
    base: str | None = None
    workdir: str = "/"
    env: dict[str, Word] = dataclasses.field(default_factory=dict)  # ENV: kept in the image
    # ENV and ARG values in effect (the last one set wins): expanded in later
    # instructions and exported to RUN steps.
    scope: dict[str, Word] = dataclasses.field(default_factory=dict)
    shell: list[str] | None = None  # SHELL: its argv for shell-form RUN (None: /bin/sh -c)
    steps: list[BuildStep] = dataclasses.field(default_factory=list)
    script: list[str] = dataclasses.field(
        default_factory=lambda: [
            "#!/bin/bash",
            "# Generated by holosc from a Dockerfile.",
            "set -e",
        ]
    )
    copies: list[WriteFile] = dataclasses.field(default_factory=list)

    def warn(self, line: int, message: str, hint: str | None = None) -> None:
        self.findings.append(Finding(line, message, "warning", hint))


def convert(text: str, context: Path, files: Files, name: str = "Dockerfile") -> Converted:
    """Convert Dockerfile `text` whose build context is `context`; `name` is its path as
    holos.yaml gives it."""
    state = _State(context, files)
    for line in _instructions(text):
        try:
            _convert(state, line)
        except DockerfileError as exc:
            message = f"{line.keyword} {shown(line.args)}".rstrip() + f": {exc}"
            state.findings.append(Finding(line.number, message, hint=exc.hint))
    build = Build(
        dockerfile=name,
        steps=tuple(state.steps),
        exports=_exports(state.env) + f"mkdir -p -- {shell_word(state.workdir)}\n",
        environment=tuple(state.env),
        first_boot=Provisioning(tuple(state.copies), "\n".join(state.script) + "\n"),
    )
    return Converted(state.base, build, tuple(state.findings))


def _convert(state: _State, line: _Line) -> None:
    if line.keyword in _SKIPPED:
        state.warn(line.number, f"{line.keyword} is skipped", _SKIPPED[line.keyword])
    elif line.heredoc:
        raise DockerfileError("heredocs are not supported", _HEREDOC_HINT)
    elif line.keyword in _CONVERT:
        _CONVERT[line.keyword](state, line.number, line.args)
    elif line.keyword == "USER":
        raise DockerfileError("switching users is not supported", _USER_HINT)
    else:
        close = difflib.get_close_matches(line.keyword, INSTRUCTIONS, n=1)
        raise DockerfileError(
            f"{shown(line.keyword)} is not a Dockerfile instruction",
            f"did you mean {close[0]}?"
            if close
            else f"the instructions are {', '.join(INSTRUCTIONS)}",
        )


def _from(state: _State, lineno: int, args: str) -> None:
    state.froms += 1
    if state.froms > 1:
        state.findings.append(
            Finding(lineno, "multi-stage builds are not supported; only one FROM is allowed")
        )
        return
    state.base = next((a for a in args.split() if not a.startswith("--")), None)


def _run(state: _State, lineno: int, args: str) -> None:
    """RUN: its shell form runs under SHELL (/bin/sh -c by default), as in Docker; the
    exec form as argv. Standard input is empty: a prompt fails instead of waiting for
    ever. The first-boot script runs the shell form inline unless SHELL set one."""
    argv = _exec_form(args)
    command = shell_command(argv or [*(state.shell or ["/bin/sh", "-c"]), args])
    script = "set -e\nexec </dev/null\n" + _exports(state.scope) + _enter(state.workdir)
    state.steps.append(BuildStep(lineno, f"RUN {args}", script + command + "\n"))
    state.script += ["", command if argv or state.shell else args]


def _env(state: _State, lineno: int, args: str) -> None:
    pairs = _env_pairs(args)
    for key, _ in pairs:
        _check_name(key)
    # Docker expands each value with the variables as they were before this line:
    # `ENV A=x B=$A` gives B the earlier A (the base image's, when no line set it).
    before = dict(state.scope)
    for key, value in pairs:
        state.env[key] = state.scope[key] = expand(value, before)
    state.script.append(_exports({key: state.env[key] for key, _ in pairs}).rstrip("\n"))


def _arg(state: _State, lineno: int, args: str) -> None:
    """ARG NAME[=default]...: a build variable, as in Docker: later instructions expand
    it and RUN steps see it, but the image does not keep it."""
    if not state.froms:
        raise DockerfileError("ARG before FROM is not supported", _ARG_BEFORE_FROM_HINT)
    words = _split_words(args)
    if not words:
        raise DockerfileError("needs NAME or NAME=default")
    pairs = [word.partition("=") for word in words]
    for name, _, _ in pairs:
        _check_name(name)
    for name, has_default, value in pairs:
        if has_default:
            state.scope[name] = expand(value, state.scope)
            state.script.append(f"export {name}={_shell_word(state.scope[name])}")
        elif name not in state.scope:
            state.warn(
                lineno,
                f"ARG {name} has no default and holosc has no --build-arg: {name} is unset",
                f"give it a default: ARG {name}=VALUE",
            )


def _check_name(key: str) -> None:
    if not _ENV_KEY.match(key):
        raise DockerfileError(
            f"'{shown(key)}' is not a variable name (letters, digits and '_', "
            "not starting with a digit)"
        )


def _workdir(state: _State, lineno: int, args: str) -> None:
    path = _literal(expand(args.strip(), state.scope))
    state.workdir = posixpath.join(state.workdir, path)
    workdir = shell_word(state.workdir)
    state.script.append(f"mkdir -p {workdir} && cd {workdir}")


def _shell(state: _State, lineno: int, args: str) -> None:
    argv = _exec_form(args)
    if argv is None:
        raise DockerfileError(
            "SHELL takes the JSON form", 'for example SHELL ["/bin/bash", "-eux", "-c"]'
        )
    state.shell = argv


def _copy_instruction(keyword: str) -> Callable[[_State, int, str], None]:
    def convert(state: _State, lineno: int, args: str) -> None:
        copied = _copy(keyword, args, state)
        if isinstance(copied, _Archive):
            _extract(state, lineno, f"{keyword} {args}", copied)
            return
        state.copies.append(copied)
        state.steps.append(_copy_step(lineno, f"{keyword} {args}", copied))
        if _copies_a_key(args, copied):
            state.warn(lineno, _KEY_WARNING.format(keyword, shown(args)))

    return convert


def _extract(state: _State, lineno: int, instruction: str, archive: _Archive) -> None:
    """ADD of a local tar: unpacked into DEST in the build step, as Docker does (the
    archive arrives as standard input; the guest's tar decompresses it). The first-boot
    form writes the archive as base64 and unpacks it from there."""
    dest = shell_word(archive.dest)
    unpack = " ".join(["tar", "-x", *[archive.flag][: bool(archive.flag)], "-f", "-", "-C", dest])
    script = f"set -e\nmkdir -p -- {dest}\n{unpack}\n"
    state.steps.append(BuildStep(lineno, instruction, script, archive.data))
    staged = f"/var/lib/holos/add-{lineno}.b64"
    encoded = base64.encodebytes(archive.data).decode("ascii")
    state.copies.append(WriteFile(staged, encoded, "0600"))
    state.script.append(f"mkdir -p -- {dest} && base64 -d {staged} | {unpack} && rm -f -- {staged}")


_CONVERT: dict[str, Callable[[_State, int, str], None]] = {
    "FROM": _from,
    "RUN": _run,
    "ENV": _env,
    "ARG": _arg,
    "WORKDIR": _workdir,
    "SHELL": _shell,
    "COPY": _copy_instruction("COPY"),
    "ADD": _copy_instruction("ADD"),
}


def _exports(env: dict[str, Word]) -> str:
    """One `export` for all: the shell expands every value before it assigns any, so a
    reference left to the guest (`$PATH` in `PATH=/opt/bin:$PATH`, a name no earlier
    line set) is the base image's value, as in Docker, even when the Dockerfile sets
    that name too."""
    if not env:
        return ""
    return "export " + " ".join(f"{key}={_shell_word(value)}" for key, value in env.items()) + "\n"


def _enter(workdir: str) -> str:
    """Docker makes WORKDIR when it is set: each step (and the seal) makes and enters it."""
    return f"mkdir -p -- {shell_word(workdir)} && cd -- {shell_word(workdir)}\n"


def _copy_step(lineno: int, instruction: str, copied: WriteFile) -> BuildStep:
    """COPY: the file's content arrives as standard input; it appears whole or not at all."""
    dest = shell_word(copied.path)
    tmp = shell_word(copied.path + ".holos-copy")
    script = (
        "set -e\n"
        + f"mkdir -p -- {shell_word(posixpath.dirname(copied.path))}\n"
        + f"cat >{tmp}\n"
        + f"chmod {copied.permissions} -- {tmp}\n"
        + f"chown {shell_word(copied.owner)} -- {tmp}\n"
        + f"mv -f -- {tmp} {dest}\n"
    )
    return BuildStep(lineno, instruction, script, copied.content.encode("utf-8"))


_KEY_WARNING = (
    "{} {}: the file looks like a private key; it is written in plaintext into the "
    "build file <p>/<service>.build.json and the built image, which are readable and "
    "often committed"
)


def _copies_a_key(args: str, copied: WriteFile) -> bool:
    source = next(w for w in args.split() if not w.startswith("--"))
    names = (PurePosixPath(source).name, PurePosixPath(copied.path).name)
    return any(looks_like_key(name, copied.content) for name in names)


def shown(text: str, limit: int = 60) -> str:
    """A Dockerfile excerpt for a message: control characters escaped, long text cut."""
    text = terminal_safe(text, one_line=True)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def expand(text: str, env: dict[str, Word]) -> Word:
    """Docker's variable expansion of one word: `\\$` is a literal `$`, text in single
    quotes is not expanded, double quotes are dropped (ENV values are unquoted already)."""
    parts: list[str | EnvRef] = []
    i = 0
    while i < len(text):
        c = text[i]
        if c == "\\" and i + 1 < len(text):
            parts.append(text[i + 1])
            i += 2
        elif c == "$":
            ref, i = _reference(text, i + 1, env)
            parts.extend(ref)
        else:
            parts.append(c)
            i += 1
    return _merge(parts)


_REF = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-+])([^}]*))?\}|([A-Za-z_][A-Za-z0-9_]*)")


def _reference(text: str, i: int, env: dict[str, Word]) -> tuple[Word, int]:
    m = _REF.match(text, i)
    if not m:
        if text[i : i + 1] == "{":
            raise DockerfileError(f"bad variable reference '${shown(text[i : i + 20])}'")
        return ("$",), i  # a lone `$` is literal, as in Docker
    name = m[1] or m[4]
    op, word = m[2] or "", expand(m[3] or "", env)
    if name not in env:
        return (EnvRef(name, op, word),), m.end()
    value = env[name]
    empty = not value or value == ("",)
    if op in ("", "-"):
        return value, m.end()
    if op == ":-":
        return (word if empty else value), m.end()
    if op == ":+":
        return (() if empty else word), m.end()
    return word, m.end()  # "+": set, even to ""


def _merge(parts: list[str | EnvRef] | Word) -> Word:
    out: list[str | EnvRef] = []
    for part in parts:
        if isinstance(part, str) and out and isinstance(out[-1], str):
            out[-1] += part
        elif part != "":
            out.append(part)
    return tuple(out)


def _literal(word: Word) -> str:
    """A path: references to variables nothing set are errors (Docker would take them
    from the base image, which holosc does not read)."""
    refs = [p.name for p in word if isinstance(p, EnvRef)]
    if refs:
        raise DockerfileError(f"${refs[0]} is not set by an earlier ENV or ARG")
    return "".join(p for p in word if isinstance(p, str))


def _shell_word(word: Word) -> str:
    """One bash word: literals quoted, references expanded by the guest's shell."""
    if not word:
        return "''"
    return "".join(shell_word(p) if isinstance(p, str) else f'"{_shell_ref(p)}"' for p in word)


def _shell_ref(ref: EnvRef) -> str:
    """`${NAME<op>word}` for use inside double quotes."""
    inner = "".join(
        re.sub(r'([$`"\\}])', r"\\\1", p) if isinstance(p, str) else _shell_ref(p) for p in ref.word
    )
    return f"${{{ref.name}{ref.op}{inner}}}"


class _Line(NamedTuple):
    number: int  # of the line the instruction starts on
    keyword: str  # upper case
    args: str
    heredoc: bool = False  # its here-documents' lines were read and are not in args


def _instructions(text: str) -> list[_Line]:
    """The instructions, with continuations joined and comments dropped."""
    result: list[_Line] = []
    # Lines end at "\n" only, as Docker reads them: str.splitlines() would also end one
    # at a form feed or U+2028 inside a value. Docker skips a byte order mark.
    text = text.removeprefix("\ufeff").removesuffix("\n")
    lines = iter(enumerate((r.removesuffix("\r") for r in text.split("\n")), 1))
    pending: list[str] = []
    start = 0
    for lineno, raw in lines:
        stripped = raw.strip()
        if stripped.startswith("#") or not (pending or stripped):
            continue
        if not pending:
            start = lineno
        if stripped.endswith("\\"):
            pending.append(stripped[:-1].rstrip())
            continue
        pending.append(stripped)
        result += _instruction(start, pending, lines)
        pending = []
    return result + _instruction(start, pending, lines)


def _instruction(start: int, parts: list[str], rest: Iterator[tuple[int, str]]) -> list[_Line]:
    """The instruction in `parts`; the bodies of its here-documents are read off `rest`
    (up to each terminator, as BuildKit does), so that they are not read as instructions."""
    words = " ".join(p for p in parts if p).split(None, 1)
    if not words:
        return []
    keyword, args = words[0].upper(), words[1] if len(words) > 1 else ""
    inner = args.split(None, 1)[0].upper() if keyword == "ONBUILD" and args else keyword
    heredocs = _heredocs(args) if inner in ("ADD", "COPY", "RUN") else []
    for name, chomp in heredocs:
        for _, raw in rest:
            if (raw.lstrip("\t") if chomp else raw) == name:
                break
    return [_Line(start, keyword, args, bool(heredocs))]


# A shell word, quotes kept; a here-document is a word `[n]<<[-]NAME` (NAME maybe quoted).
_WORD = re.compile(r"""(?:[^\s"'\\]|\\.|"(?:[^"\\]|\\.)*"?|'[^']*'?)+""")
_HEREDOC = re.compile(r"^[0-9]*<<(-?)([^<]+)\Z")


def _heredocs(args: str) -> list[tuple[str, bool]]:
    """(terminator, leading tabs stripped) of each here-document `args` opens."""
    found = []
    for word in _WORD.findall(args):
        m = _HEREDOC.match(word)
        try:
            names = shlex.split(m[2]) if m else []
        except ValueError:
            continue
        if m and len(names) == 1 and names[0]:
            found.append((names[0], m[1] == "-"))
    return found


def _exec_form(args: str) -> list[str] | None:
    """The argv of `RUN ["cmd", "arg"]`, or None for the shell form."""
    if not args.startswith("["):
        return None
    try:
        argv = json.loads(args)
    except json.JSONDecodeError:
        return None
    if isinstance(argv, list) and argv and all(isinstance(a, str) for a in argv):
        return argv
    return None


def _env_pairs(args: str) -> list[tuple[str, str]]:
    """(key, value) pairs with quotes removed and `$` references left for `expand`: in
    single quotes a `$` is escaped, so it stays literal, as in Docker."""
    first = args.split(None, 1)[0] if args.split() else ""
    if "=" not in first:
        # Legacy form: ENV KEY rest of line
        key, _, rest = args.partition(" ")
        return [(key, rest.strip())]
    pairs = []
    for word in _split_words(args):
        key, sep, value = word.partition("=")
        if not sep:
            raise DockerfileError(f"'{shown(word)}' is not KEY=VALUE")
        pairs.append((key, value))
    return pairs


def _split_words(text: str) -> list[str]:
    """Words as Docker splits ENV: quotes group and are removed; inside single quotes `$`
    and `\\` are escaped with `\\` so that `expand` keeps them literal."""
    words: list[str] = []
    current: list[str] = []
    quote = ""
    started = False
    i = 0
    while i < len(text):
        c = text[i]
        if quote == "'":
            if c == "'":
                quote = ""
            else:
                current.append("\\" + c if c in "$\\" else c)
        elif quote == '"':
            if c == '"':
                quote = ""
            elif c == "\\" and i + 1 < len(text) and text[i + 1] in '"$\\':
                current.append("\\" + text[i + 1])
                i += 1
            else:
                current.append(c)
        elif c in "'\"":
            quote, started = c, True
        elif c == "\\" and i + 1 < len(text):
            current.append("\\" + text[i + 1])
            i += 1
            started = True
        elif c.isspace():
            if started or current:
                words.append("".join(current))
            current, started = [], False
        else:
            current.append(c)
            started = True
        i += 1
    if quote:
        raise DockerfileError("unterminated quote")
    if started or current:
        words.append("".join(current))
    return words


@dataclasses.dataclass(frozen=True)
class _Archive:
    """An ADD source Docker would unpack: where to, and tar's decompression flag."""

    dest: str
    data: bytes
    flag: str


def _copy(keyword: str, args: str, state: _State) -> WriteFile | _Archive:
    """COPY, or ADD of a local file: the same file, checks and flags; or an archive ADD
    unpacks."""
    words = args.split()
    flags = {w.split("=", 1)[0]: w.partition("=")[2] for w in words if w.startswith("--")}
    paths = [_literal(expand(w, state.scope)) for w in words if not w.startswith("--")]
    if "--from" in flags and keyword == "COPY":
        raise DockerfileError("multi-stage COPY --from is not supported")
    unknown = sorted(set(flags) - {"--chmod", "--chown"})
    if unknown:
        raise DockerfileError(f"flag {shown(unknown[0])} is not supported (only --chmod, --chown)")
    mode = flags.get("--chmod") or "0644"
    if not _MODE.match(mode):
        raise DockerfileError(f"--chmod={shown(mode)} is not an octal mode such as 0644")
    owner = flags.get("--chown") or "root:root"
    if not _OWNER.match(owner):
        raise DockerfileError(f"--chown={shown(owner)} is not USER[:GROUP] (names or numeric ids)")
    if len(paths) != 2:
        raise DockerfileError(
            "needs exactly one source and one destination "
            f"(split multi-source {keyword} into one {keyword} per source)"
        )
    source, dest = paths
    if keyword == "ADD" and _URL.match(source):
        raise DockerfileError(
            f"source '{source}' is a URL, which holosc does not download",
            "download it in a RUN step with curl, wget or git clone",
        )
    real = _source(keyword, source, state.context, state.files)
    try:
        data = state.files.read_bytes(real)
    except OSError as exc:
        raise DockerfileError(f"cannot read source '{source}': {exc}") from exc
    flag = archive_flag(data) if keyword == "ADD" else None
    if flag is not None:
        if "--chmod" in flags or "--chown" in flags:
            raise DockerfileError(
                f"--chmod and --chown are not supported when ADD unpacks an archive ('{source}')",
                "the files keep the modes and owners the archive gives them",
            )
        return _Archive(posixpath.normpath(posixpath.join(state.workdir, dest)), data, flag)
    if dest.endswith("/"):
        dest += PurePosixPath(source).name
    dest = posixpath.normpath(posixpath.join(state.workdir, dest))
    try:
        content = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise DockerfileError(f"cannot read source '{source}': {exc}") from exc
    return WriteFile(dest, content, mode.rjust(4, "0"), owner)


# ADD downloads these (git@host:repo is a Git repository).
_URL = re.compile(r"^([a-z][a-z0-9+.-]*://|git@)", re.I)
# The compressions Docker's ADD unpacks, by their magic bytes: tar's flag for each, and a
# decompressor of the first bytes (enough to see a tar header, never the whole stream).
_COMPRESSED: tuple[tuple[bytes, str, Callable[[bytes], bytes]], ...] = (
    (b"\x1f\x8b", "-z", lambda d: zlib.decompressobj(16 + zlib.MAX_WBITS).decompress(d, 1024)),
    (b"BZh", "-j", lambda d: bz2.BZ2Decompressor().decompress(d, max_length=1024)),
    (b"\xfd7zXZ\x00", "-J", lambda d: lzma.LZMADecompressor().decompress(d, max_length=1024)),
)


def archive_flag(data: bytes) -> str | None:
    """tar's flag ("" for none) when Docker's ADD would unpack `data`: a tar archive,
    plain or compressed with gzip, bzip2 or xz, known by its content, not its name."""
    flag, head = "", data[:1024]
    for magic, compressed, decompress in _COMPRESSED:
        if data.startswith(magic):
            try:
                flag, head = compressed, decompress(data)
            except (OSError, EOFError, ValueError, lzma.LZMAError, zlib.error):
                return None
            break
    try:
        tarfile.TarInfo.frombuf(head[:512], "utf-8", "surrogateescape")
    except (tarfile.HeaderError, ValueError):
        return None
    return flag


def _source(keyword: str, source: str, context: Path, files: Files) -> Path:
    """The real path of a single file inside the build context."""
    if PurePosixPath(source).is_absolute():
        raise DockerfileError(f"source '{source}' escapes the build context")
    real_context = files.realpath(context)
    real = files.realpath(context / source)
    if real != real_context and real_context not in real.parents:
        raise DockerfileError(f"source '{source}' escapes the build context")
    kind = files.kind(real)
    if kind != "file":
        raise DockerfileError(
            f"source '{source}' is "
            + {"dir": "a directory", "other": "not a regular file"}.get(kind, "missing")
            + f"; {keyword} takes single files (use a volume for directories)"
        )
    return real
