"""The one escaping function per output format. Every value that reaches a unit file,
shell script, QEMU option string or YAML document goes through exactly one of these.

- `unit_value`: a systemd unit setting's value (not Exec lines); `unit_search_path` a
  list of paths such as ExecSearchPath=.
- `exec_line`: a systemd Exec*= command line from an argv; words of type `Specifier`
  keep their `%` specifiers, every other word is literal (`%`→`%%`, `$`→`$$`).
- `shell_word`: one bash word (shlex.quote), with `ShellVar` parts expanded at run time;
  `shell_command` joins such words into a command line a remote shell runs as that argv.
- `qemu_value`: one value inside a QEMU `-opt key=value,...` string (`,`→`,,`);
  `qemu_value_at_run_time` does the same in bash for a value the launch script learns.
  `qemu_name` (a machine type: QEMU has no escape in that position) and `qemu_cpu` (a
  `-cpu` value) refuse what they cannot carry. These live in holos_runtime.optstrings,
  shared with the runtime helpers, which write QEMU and ssh options too.
- `fuse_value_at_run_time`: one value inside a FUSE `-o` list (QEMU 7.2's C virtiofsd),
  escaped in bash for the directory the launch script learns (`fuse_value` in Python).
- `fstab_field`: one field of an /etc/fstab line (a space is `\\040`).
- `yaml_comment`: one `# ...` comment line of a YAML document (control characters,
  line breaks included, are shown escaped, so text never leaves the comment).
- `sshd_word`: one word of an sshd_config line, quoted as OpenSSH's argv_split reads it.
- `ssh_config_path`: a path an ssh_config line (or `ssh -o`) carries, where ssh expands
  `%` tokens, `${VAR}` and a leading `~` (IdentityFile, UserKnownHostsFile).
- `yaml_document`: a YAML document (PyYAML safe_dump, which only emits what it can
  load back) with multi-line strings as literal blocks.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Iterable, Sequence
from typing import Any

import yaml
from holos_runtime.optstrings import qemu_cpu, qemu_name, qemu_value

__all__ = [
    "ShellVar", "Specifier", "exec_line", "exec_word", "fstab_field", "fuse_value",
    "fuse_value_at_run_time", "qemu_cpu", "qemu_name", "qemu_value", "qemu_value_at_run_time",
    "shell_command", "shell_word", "ssh_config_path", "sshd_word", "unit_search_path",
    "unit_value", "yaml_comment",
    "yaml_document",
]  # fmt: skip

_CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")
_EXEC_SAFE = re.compile(r"[A-Za-z0-9_./:@+=,-]+")
_C_ESCAPES = {"\\": "\\\\", '"': '\\"', "\t": "\\t", "\n": "\\n", "\r": "\\r"}


class Specifier(str):
    """A unit-file word whose `%` specifiers (%i, %t, %S, %E) systemd must expand."""

    __slots__ = ()


class ShellVar(str):
    """The name of a launch-script variable, expanded by bash at run time."""

    __slots__ = ()


def unit_value(value: str) -> str:
    """A literal value for a non-Exec unit setting."""
    if _CONTROL.search(value) or value.endswith("\\"):
        raise ValueError(f"unit value {value!r} contains a control character or trailing \\")
    return value if isinstance(value, Specifier) else value.replace("%", "%%")


def unit_search_path(paths: Sequence[str]) -> str:
    """A colon-separated list of absolute paths (ExecSearchPath=): systemd splits it at
    `:` and unescapes `\\`, neither of which a path can then carry; whether it expands
    `%` specifiers there changed between versions, so a `%` is refused too."""
    for path in paths:
        if not path.startswith("/") or set(path) & set(":\\%"):
            raise ValueError(f"{path!r} cannot be an entry of a unit's search path")
    return unit_value(":".join(paths))


def exec_word(word: str) -> str:
    """One word of an Exec*= line, quoted as systemd.service(5) describes."""
    text = word if isinstance(word, Specifier) else word.replace("%", "%%")
    text = text.replace("$", "$$")
    if text and _EXEC_SAFE.fullmatch(text.replace("%", "")) and text != ";":
        return text
    out = []
    for ch in text:
        if ch in _C_ESCAPES:
            out.append(_C_ESCAPES[ch])
        elif ord(ch) < 0x20 or ord(ch) == 0x7F:
            out.append(f"\\x{ord(ch):02x}")
        else:
            out.append(ch)
    return '"' + "".join(out) + '"'


def exec_line(argv: Sequence[str], prefix: str = "") -> str:
    """An Exec*= value; `prefix` is systemd's `-`, `@`, `:`, `+` or `!` flags."""
    if not argv:
        raise ValueError("empty command line")
    return prefix + " ".join(exec_word(w) for w in argv)


def shell_word(parts: str | Iterable[str]) -> str:
    """One bash word from literal strings and `ShellVar` names, e.g. [ShellVar("run"), "/x"]."""
    if isinstance(parts, str):
        parts = [parts]
    out = []
    for part in parts:
        if isinstance(part, ShellVar):
            if not re.fullmatch(r"[a-z_][a-z0-9_]*", part):
                raise ValueError(f"bad shell variable name {part!r}")
            out.append(f'"${{{part}}}"')
        elif part:
            out.append(shlex.quote(part))
    return "".join(out) or "''"


def shell_command(argv: Sequence[str]) -> str:
    """A command line for a shell that must run exactly `argv` (ssh's remote command).

    Each word is a `shell_word`; a first word starting with `-` is quoted as well, since
    `sh -c -x...` would read an unquoted one as the shell's own option.
    """
    if not argv:
        raise ValueError("empty command line")
    first = shell_word(argv[0])
    if first.startswith("-"):
        first = f"'{first}'"  # shlex.quote leaves such a word bare: it has no metacharacter
    return " ".join([first, *(shell_word(w) for w in argv[1:])])


def fstab_field(value: str) -> str:
    """One field of an fstab line: whitespace, control characters and `\\` as the `\\ooo`
    octal escapes fstab(5) and libmount read back (a space is `\\040`)."""
    if not value:
        raise ValueError("an fstab field cannot be empty")
    return _FSTAB_SPECIAL.sub(lambda m: "".join(f"\\{b:03o}" for b in m[0].encode()), value)


_FSTAB_SPECIAL = re.compile(r"[\s\\\x00-\x1f\x7f]")


def qemu_value_at_run_time(var: str) -> str:
    """The bash line that sets `<var>_q` to qemu_value of `$var`, for values the launch
    script learns at run time (directories, firmware)."""
    if not re.fullmatch(r"[a-z_][a-z0-9_]*", var):
        raise ValueError(f"bad shell variable name {var!r}")
    return f"{var}_q=${{{var}//,/,,}}"


def fuse_value(value: str) -> str:
    r"""A value inside a FUSE `-o a=b,c=d` list as libfuse's fuse_opt reads it (QEMU 7.2's
    C virtiofsd carries a copy): a backslash escapes the next character, and a comma
    ends the option. So both get a backslash; nothing else is special (a `\ooo` octal
    escape needs a backslash, and every backslash is escaped)."""
    if "\0" in value:
        raise ValueError("FUSE option values cannot contain NUL")
    return value.replace("\\", "\\\\").replace(",", "\\,")


def fuse_value_at_run_time(var: str) -> str:
    """The bash line that sets `<var>_o` to fuse_value of `$var` (the virtiofs share's
    directory, which the launch script learns at run time)."""
    if not re.fullmatch(r"[a-z_][a-z0-9_]*", var):
        raise ValueError(f"bad shell variable name {var!r}")
    return f"{var}_o=${{{var}//\\\\/\\\\\\\\}} {var}_o=${{{var}_o//,/\\\\,}}"


class _Dumper(yaml.SafeDumper):
    """Block style, no aliases, literal blocks for multi-line strings."""

    def ignore_aliases(self, data: Any) -> bool:
        return True


_YAML_BREAKS = re.compile("[\x85\u2028\u2029]")


def _str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    style: str | None = None
    if _YAML_BREAKS.search(value):
        style = '"'  # PyYAML mangles these line breaks in other styles; escape them
    elif "\n" in value and not re.search(r"[ \t]\n|[^\S\n]$|\r", value):
        style = "|"
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _str)

# libyaml's emitter (PyYAML's C extension) writes the same bytes as the pure-Python one,
# several times faster, except where tests/test_yaml_emitters.py found them to differ:
# characters beyond U+FFFF (libyaml escapes them, PyYAML writes them as they are), a
# literal block with "keep" chomping (libyaml then ends the document with "..."), and
# mapping keys that are not plain words. Documents with any of these use the Python one.
_CDumper: Any = None
if getattr(yaml, "__with_libyaml__", False):

    class _CDumperType(yaml.CSafeDumper):
        def ignore_aliases(self, data: Any) -> bool:
            return True

    _CDumperType.add_representer(str, _str)  # type: ignore[arg-type]
    _CDumper = _CDumperType

_PLAIN_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_-]*")
_ASTRAL = re.compile("[\U00010000-\U0010ffff]")


def libyaml_emits_same(data: Any) -> bool:
    """Whether libyaml's emitter writes `data` exactly as PyYAML's would (see above)."""
    if isinstance(data, str):
        keep = data.endswith("\n") and (len(data) == 1 or data[-2] in "\n\x85\u2028\u2029")
        return not keep and (data.isascii() or not _ASTRAL.search(data))
    if isinstance(data, dict):
        return all(
            isinstance(k, str) and _PLAIN_KEY.fullmatch(k) and libyaml_emits_same(v)
            for k, v in data.items()
        )
    if isinstance(data, list | tuple):
        return all(libyaml_emits_same(v) for v in data)
    return data is None or isinstance(data, bool | int)


def sshd_word(value: str) -> str:
    """One double-quoted word of an sshd_config line: inside quotes OpenSSH's argv_split
    takes backslash-escaped `"` and `\\` and everything else literally, `#` included."""
    if re.search(r"[\x00\n\r]", value):
        raise ValueError(f"{value!r}: sshd_config has no way to write NUL or a line break")
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def ssh_config_path(path: str) -> str:
    """A path as one word of an ssh_config line: `%` doubled (ssh expands `%d`, `%h`, ...
    in these paths), quoted as argv_split reads it when it holds more than plain path
    characters. ssh has no escape for `${` (environment expansion), a line break or NUL,
    and a path must be absolute (a leading `~` is the home directory): those are refused."""
    if not path.startswith("/") or "${" in path or re.search(r"[\x00\n\r]", path):
        raise ValueError(
            f"{path!r}: ssh_config cannot carry this path (it must be absolute, without "
            "'${' or a line break)"
        )
    text = path.replace("%", "%%")
    return text if _SSH_PLAIN.fullmatch(text) else sshd_word(text)


_SSH_PLAIN = re.compile(r"[A-Za-z0-9_./:@+=,%-]+")


def yaml_document(data: Any, *, libyaml: bool = True) -> str:
    """`data` as a YAML document that PyYAML (and so cloud-init) loads back unchanged.

    `libyaml=False` forces the pure-Python emitter (the reference the tests compare with).
    """
    fast = libyaml and _CDumper is not None and libyaml_emits_same(data)
    return yaml.dump(
        data,
        Dumper=_CDumper if fast else _Dumper,
        sort_keys=False,
        default_flow_style=False,
        allow_unicode=True,
        width=1_000_000,
        indent=2,
    )


_COMMENT_UNSAFE = re.compile("[\x00-\x1f\x7f\x85\u2028\u2029]")


def yaml_comment(text: str) -> str:
    """One YAML comment line for `text`."""
    escaped = _COMMENT_UNSAFE.sub(lambda m: f"\\u{ord(m.group()):04x}", text)
    return f"# {escaped}".rstrip()
