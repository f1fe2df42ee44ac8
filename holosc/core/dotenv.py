"""compose's `.env` / `env_file` format, as compose-go's dotenv package reads it
(docs/format.md, "The .env format"): text in, variables out, errors at their line.

- `KEY=VALUE`, `KEY: VALUE` (YAML style), `export KEY=VALUE`; spaces around the key and
  the value are dropped. A key is letters, digits, `_`, `.`, `-`, `[` and `]`; another
  character is an error, and so is a space inside the key.
- A line that is only `KEY` takes KEY's value from the environment given (none: unset).
- Unquoted values end at the line's end; ` #` starts a comment. Single quotes are literal
  (only `\\'` is an escaped quote); double quotes take `\\n`, `\\t`, `\\\\`, `\\"`, `\\$`,
  octal `\\0NNN` and the rest of the echo escapes. Quoted values may span lines.
- Unquoted and double-quoted values are interpolated (holosc.core.interpolate): the
  environment given first, then the variables of the lines before.
- A UTF-8 byte order mark at the start is skipped.

Pure: the caller reads the file and passes the environment.
"""

from __future__ import annotations

import collections
import dataclasses
import re
from collections.abc import Mapping

from holosc.core.interpolate import MAX_OUTPUT, Budget, InterpolationError, Trace, substitute

# The whitespace compose's parser skips around keys and values: not a line break.
_BLANK = "\t\v\f\r \x85\xa0"
# Go's unicode.IsSpace, which trims keys and unquoted values and separates statements.
_SPACE = _BLANK + "\n\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009\u200a"
_SPACE += "\u2028\u2029\u202f\u205f\u3000"
_KEY_END = re.compile(r"[=:\n]")
# Letters and digits (Go's unicode.IsLetter, IsNumber), `_ . - [ ]`, and blanks.
_KEY = re.compile(r"[\w.\-\[\]\t\v\f\r \x85\xa0]*")
_ESCAPE = re.compile(r'\\(?:[abcfnrtv$"\\]|0[0-9]{0,3})')
_SIMPLE = {"a": "\a", "b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t", "v": "\v"}
_SIMPLE |= {"\\": "\\", '"': '"'}
_EXPORT = re.compile(r"export[\t\n\f\r ]+")
# Where a quoted value may end or escape: its quote, or a backslash.
_STOPS = {q: re.compile(r"[\\" + q + "]") for q in "'\""}


class DotenvError(Exception):
    """A malformed line; `line` is where it starts (1-based)."""

    def __init__(self, line: int, message: str) -> None:
        super().__init__(message)
        self.line = line
        self.message = message


@dataclasses.dataclass
class Parsed:
    """The variables (those given before, then the file's), the keys the file's own lines
    set, and the unset variables its values named, by line."""

    values: dict[str, str]
    keys: list[str] = dataclasses.field(default_factory=list)
    unset: list[tuple[int, str]] = dataclasses.field(default_factory=list)


def parse_dotenv(
    text: str,
    environ: Mapping[str, str] | None = None,
    before: Mapping[str, str] | None = None,
) -> Parsed:
    """The variables of `text`. `environ` answers `KEY` lines and is looked up first when
    values are interpolated; `before` holds variables set earlier (earlier env files,
    looked up after `environ`), which this file's lines override.

    :raises DotenvError: on the first malformed line.
    """
    return _Parser(text, environ or {}, dict(before or {})).run()


def parse_raw(text: str, environ: Mapping[str, str] | None = None) -> Parsed:
    """`env_file: {format: raw}`: docker run --env-file's format, values as written.

    :raises DotenvError: for a key with whitespace or a line with no key.
    """
    values: dict[str, str] = {}
    for number, line in enumerate(text.removeprefix("\ufeff").splitlines(), start=1):
        line = line.lstrip()
        if not line or line.startswith("#"):
            continue
        key, sep, value = line.partition("=")
        if any(c in key for c in " \t"):
            raise DotenvError(number, f"variable '{key}' contains whitespaces")
        if not key:
            raise DotenvError(number, f"no variable name on line '{line}'")
        if sep:
            values[key] = value
        elif (found := (environ or {}).get(key)) is not None:
            values[key] = found
    return Parsed(values, list(values))


class _Parser:
    def __init__(self, text: str, environ: Mapping[str, str], before: dict[str, str]) -> None:
        self.text = text.removeprefix("\ufeff")
        self.environ = environ
        self.out = before
        self.line = 1
        self.pos = 0
        self.trace: list[tuple[int, str]] = []
        self.keys: list[str] = []
        self.budget = Budget(MAX_OUTPUT)
        self.lookup = collections.ChainMap(dict(environ), before)  # `before` grows as we go

    def run(self) -> Parsed:
        while self._statement_start():
            self._statement()
        return Parsed(self.out, list(dict.fromkeys(self.keys)), self.trace)

    def _statement_start(self) -> bool:
        """Skip blank space and comment lines; False at the end."""
        text = self.text
        while self.pos < len(text):
            c = text[self.pos]
            if c == "#":
                end = text.find("\n", self.pos)
                if end < 0:
                    self.pos = len(text)
                    return False
                self.pos = end
            elif c in _SPACE:
                self.line += c == "\n"
                self.pos += 1
            else:
                return True
        return False

    def _statement(self) -> None:
        start = self.line
        key, inherited = self._key()
        if " " in key:
            raise DotenvError(start, "key cannot contain a space")
        if inherited:
            value = self.environ.get(key)
            if value is not None:
                self.out[key] = value
                self.keys.append(key)
            return
        self.out[key] = self._value(start)
        self.keys.append(key)

    def _key(self) -> tuple[str, bool]:
        """The key at pos (after `export `), and whether the line ends after it."""
        text = self.text
        if m := _EXPORT.match(text, self.pos):
            self.pos = m.start() + len("export")
            while self.pos < len(text) and text[self.pos] in _BLANK:
                self.pos += 1
        begin = self.pos
        end = _KEY_END.search(text, begin)
        stop = end.start() if end else len(text)
        valid = _KEY.match(text, begin, stop)
        if valid is not None and valid.end() < stop:
            bad = text[valid.end()]
            first = text[begin:].split("\n", 1)[0]
            raise DotenvError(self.line, f"unexpected character {bad!r} in variable name {first!r}")
        if end is not None:
            key = text[begin:stop].rstrip(_SPACE)
            self.pos = stop + 1
            if end[0] == "\n":
                self.line += 1
            while self.pos < len(text) and text[self.pos] in _BLANK:
                self.pos += 1
            return key, end[0] == "\n"
        return "", False  # compose reads the rest as the value of an empty key

    def _value(self, start: int) -> str:
        text = self.text
        quote = text[self.pos : self.pos + 1]
        if quote not in ("'", '"'):
            end = text.find("\n", self.pos)
            end = len(text) if end < 0 else end
            value = text[self.pos : end].split(" #", 1)[0].rstrip(_SPACE)
            self.pos = end + 1
            self.line += 1
            return self._expand(value, start)
        value = self._quoted(quote, start)
        if quote == "'":
            return value
        return self._expand(_unescape(value), start)

    def _quoted(self, quote: str, start: int) -> str:
        """The text up to the closing quote; a backslash before the quote escapes it (and
        is dropped), before anything else it stays."""
        text = self.text
        stops = _STOPS[quote]
        chars: list[str] = []
        i = self.pos + 1
        while (m := stops.search(text, i)) is not None:
            j = m.start()
            chars.append(text[i:j])
            if text[j] == quote:
                self.line += text.count("\n", self.pos, j)
                self.pos = j + 1
                return "".join(chars)
            if j + 1 >= len(text):
                break
            escaped = text[j + 1]
            chars.append(escaped if escaped == quote else "\\" + escaped)
            i = j + 2
        first = text[self.pos :].split("\n", 1)[0]
        raise DotenvError(start, f"unterminated quoted value {first}")

    def _expand(self, value: str, line: int) -> str:
        if "$" not in value:
            return value
        trace = Trace()
        try:
            result = substitute(value, self.lookup, trace, self.budget)
        except InterpolationError as exc:
            raise DotenvError(line, str(exc)) from None
        self.trace += [(line, name) for name in trace.unset]
        return result


def _unescape(value: str) -> str:
    """compose's escapes in double quotes: echo's (\\a ... \\v, \\\\, \\", octal \\0NNN);
    `\\$` becomes `$$`, the literal dollar of interpolation; any other backslash stays."""

    def one(m: re.Match[str]) -> str:
        seq = m[0]
        if seq == "\\$":
            return "$$"
        if seq.startswith("\\0"):
            digits = seq[2:]
            if len(digits) == 3 and all(d in "01234567" for d in digits):
                code = int(digits, 8)
                return chr(code) if code <= 255 else "\\" + digits
            return "\\" + digits  # compose drops the 0 of an escape it cannot read
        return _SIMPLE.get(seq[1], seq)

    return _ESCAPE.sub(one, value)
