"""The `.env` format, row by row against compose's reference behaviour (compose-go
dotenv/godotenv_test.go and parser_test.go, compose-spec 05-services.md "Env_file format",
docker/compose e2e fixtures). Each row's file is the project's `.env`; its variables are
read back through interpolation, as a user's holos.yaml reads them."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

from holosc.errors import HolosError
from holosc.load.parse import load_file
from tests.compose_ref import Err, params, write

UNSET = "\x1f<unset>"  # what a probe of a variable the file leaves unset reads


@dataclasses.dataclass(frozen=True)
class Row:
    source: str
    text: str | bytes
    expected: dict[str, str | None] | Err  # None: the variable is not set
    env: dict[str, str] = dataclasses.field(default_factory=dict)


G = "godotenv_test.go "
P = "parser_test.go "
SPEC = "05-services.md Env_file format"
E2E = "docker/compose e2e "


def one(key: str, value: str | None) -> dict[str, str | None]:
    return {key: value}


def at(line: int, text: str) -> Err:
    return Err(text, f".env:{line}:")


ROWS = [
    Row(G + "TestParse", "ONE=1\nTWO='2'\nTHREE = \"3\"", {"ONE": "1", "TWO": "2", "THREE": "3"}),
    Row(
        G + "TestReadPlainEnv",
        "A=1\nB=2\nC=3\nD=4\nE=5\nF=\nG= \nH=my string",
        {"A": "1", "E": "5", "F": "", "G": "", "H": "my string"},
    ),
    Row(G + "TestParsing unquoted", "FOO=bar", one("FOO", "bar")),
    Row(G + "TestParsing spaces around =", "FOO =bar", one("FOO", "bar")),
    Row(G + "TestParsing spaces around =", "FOO= bar", one("FOO", "bar")),
    Row(G + "TestParsing double quotes", 'FOO="bar"', one("FOO", "bar")),
    Row(G + "TestParsing single quotes", "FOO='bar'", one("FOO", "bar")),
    Row(G + "TestParsing escaped double quote", 'FOO="esc\\"aped"', one("FOO", 'esc"aped')),
    Row(G + "TestParsing escaped double quote", 'FOO="\\"quoted\\""', one("FOO", '"quoted"')),
    Row(G + "TestParsing single in double", "FOO=\"'d'\"", one("FOO", "'d'")),
    Row(G + "TestParsing yaml style", "OPTION_A: 1", one("OPTION_A", "1")),
    Row(G + "TestParsing yaml style", "OPTION_A: Foo=bar", one("OPTION_A", "Foo=bar")),
    Row(G + "TestParsing colon in value", "OPTION_A=1:B", one("OPTION_A", "1:B")),
    Row(G + "TestParsing export", "export OPTION_A=2", one("OPTION_A", "2")),
    Row(G + "TestParsing export", "export OPTION_B='\\n'", one("OPTION_B", "\\n")),
    Row(G + "TestParsing export", "export exportFoo=2", one("exportFoo", "2")),
    Row(G + "TestParsing export", "exportFOO=2", one("exportFOO", "2")),
    Row(G + "TestParsing export", "export_FOO =2", one("export_FOO", "2")),
    Row(G + "TestParsing export", "export\tOPTION_A=2", one("OPTION_A", "2")),
    Row(G + "TestParsing export", "  export OPTION_A=2", one("OPTION_A", "2")),
    Row(G + "TestParsing export", "\texport OPTION_A=2", one("OPTION_A", "2")),
    Row(G + "TestParsing export", 'export OPTION_A="export A"', one("OPTION_A", "export A")),
    Row(G + "TestParsing export", "export=literal", one("export", "literal")),
    Row(G + "TestParsing newline escape", 'FOO="bar\\nbaz"', one("FOO", "bar\nbaz")),
    Row(G + "TestParsing no escape unquoted", "FOO=a\\tb", one("FOO", "a\\tb")),
    Row(G + "TestParsing tab escape", 'FOO="a\\tb"', one("FOO", "a\tb")),
    Row(
        G + "TestParsing echo escapes",
        'KEY="Z\\aZ\\bZ\\fZ\\nZ\\rZ\\tZ\\vZ\\\\Z\\0123Z"',
        one("KEY", "Z\aZ\bZ\fZ\nZ\rZ\tZ\vZ\\ZSZ"),
    ),
    Row(G + "TestParsing several =", "FOO=foobar=", one("FOO", "foobar=")),
    Row(G + "TestParsing strips unquoted", "FOO=bar   ", one("FOO", "bar")),
    Row(G + "TestParsing inline comment", "FOO=bar # this is foo", one("FOO", "bar")),
    Row(G + "TestParsing inline comment", "FOO=bar #this is foo", one("FOO", "bar")),
    Row(G + "TestParsing inline comment", "FOO=bar #", one("FOO", "bar")),
    Row(G + "TestParsing not a comment", "FOO=123#not-a-comment", one("FOO", "123#not-a-comment")),
    Row(G + "TestParsing # in quotes", 'FOO="bar#baz"', one("FOO", "bar#baz")),
    Row(G + "TestParsing # in quotes", 'FOO="bar#baz"#', one("FOO", "bar#baz")),
    Row(G + "TestParsing # in quotes", 'FOO="bar#baz" # comment', one("FOO", "bar#baz")),
    Row(G + "TestParsing # in quotes", "FOO='bar#baz' # comment", one("FOO", "bar#baz")),
    Row(G + "TestParsing # in quotes", 'FOO="bar#baz#bang" # comment', one("FOO", "bar#baz#bang")),
    Row(G + "TestParsing # in quotes", "FOO='ba#r'", one("FOO", "ba#r")),
    Row(G + "TestParsing backslashes", 'FOO="bar\\n\\ b\\az"', one("FOO", "bar\n\\ b\az")),
    Row(G + "TestParsing backslashes", 'FOO="bar\\\\\\n\\ b\\az"', one("FOO", "bar\\\n\\ b\az")),
    Row(G + "TestParsing backslashes", 'FOO="bar\\\\r\\ b\\az"', one("FOO", "bar\\r\\ b\az")),
    Row(G + "TestParsing backslashes", 'FOO="bar\\nbaz\\\\"', one("FOO", "bar\nbaz\\")),
    Row(G + "TestParsing empty key", '="value"\nNEXT=1', one("NEXT", "1")),
    Row(G + "TestParsing leading space", " KEY =value", one("KEY", "value")),
    Row(G + "TestParsing leading space", "   KEY=value", one("KEY", "value")),
    Row(G + "TestParsing leading space", "\tKEY=value", one("KEY", "value")),
    Row(G + "TestParsing octal", 'KEY="\\0123"', one("KEY", "S")),
    Row(G + "TestParsing octal", 'KEY="\\0101\\0102"', one("KEY", "AB")),
    Row(G + "TestParsing no \\x", 'KEY="\\x07"', one("KEY", "\\x07")),
    Row(G + "TestParsing no \\u", 'KEY="\\u12e4"', one("KEY", "\\u12e4")),
    Row(G + "TestParsing no \\U", 'KEY="\\U00101234"', one("KEY", "\\U00101234")),
    Row(G + "TestParsing bad line", "lol$wut", at(1, "unexpected character '$'")),
    Row(G + "TestParsing bad line", "OK=1\nlol$wut=2", at(2, "unexpected character '$'")),
    Row(G + "TestUnterminatedQuotes", 'KEY="', at(1, "unterminated quoted value")),
    Row(G + "TestUnterminatedQuotes", 'KEY="value', at(1, "unterminated quoted value")),
    Row(G + "TestUnterminatedQuotes", 'KEY="value\\"', at(1, "unterminated quoted value")),
    Row(G + "TestUnterminatedQuotes", "KEY=\"value'", at(1, "unterminated quoted value")),
    Row(G + "TestUnterminatedQuotes", "KEY='", at(1, "unterminated quoted value")),
    Row(G + "TestUnterminatedQuotes", "KEY='value", at(1, "unterminated quoted value")),
    Row(G + "TestUnterminatedQuotes", "KEY='value\\'", at(1, "unterminated quoted value")),
    Row(G + "TestUnterminatedQuotes", "KEY='value\"", at(1, "unterminated quoted value")),
    Row(G + "TestUnterminatedQuotes", 'A=1\nB="open\nC=3\n', at(2, "unterminated quoted value")),
    Row(G + "TestLinesToIgnore", "\n\nKEY=1", one("KEY", "1")),
    Row(G + "TestLinesToIgnore", "\r\nKEY=1\r\n", one("KEY", "1")),
    Row(G + "TestLinesToIgnore", "\t\t \nKEY=1", one("KEY", "1")),
    Row(G + "TestLinesToIgnore", "# Comment\nKEY=1", one("KEY", "1")),
    Row(G + "TestLinesToIgnore", "\t # indented comment\nKEY=1", one("KEY", "1")),
    Row(G + "TestLinesToIgnore", "# KEY=1", one("KEY", None)),
    Row(
        G + "TestErrorParsing", "A=1\n# ok\nKEY WITH SPACE=1\n", at(3, "key cannot contain a space")
    ),
    Row(
        G + "TestInheritedEnvVariableSameSize",
        "INHERITED\nfoo=bar\nbar=baz",
        {"INHERITED": "from env", "foo": "bar", "bar": "baz"},
        env={"INHERITED": "from env"},
    ),
    Row(
        G + "TestInheritedEnvVariableSingleVar",
        "INHERITED",
        one("INHERITED", "x"),
        env={"INHERITED": "x"},
    ),
    Row(
        G + "TestInheritedEnvVariableNotFound",
        "VARIABLE_NOT_FOUND",
        one("VARIABLE_NOT_FOUND", None),
    ),
    Row(
        G + "TestInheritedEnvVariableNotFound",
        "NOT_FOUND_1\nNOT_FOUND_2\nSET=1",
        {"NOT_FOUND_1": None, "NOT_FOUND_2": None, "SET": "1"},
    ),
    Row(
        G + "TestExpandingEnvironmentWithLookup", "TEST=$ME", one("TEST", "YES"), env={"ME": "YES"}
    ),
    Row(G + "TestExpanding", "FOO=test\nBAR=$FOO", one("BAR", "test")),
    Row(G + "TestExpanding", "FOO=test\nBAR=${FOO}bar", one("BAR", "testbar")),
    Row(G + "TestExpanding", "BAR=$FOO", one("BAR", "")),
    Row(G + "TestExpanding", 'FOO=test\nBAR="quote $FOO"', one("BAR", "quote test")),
    Row(G + "TestExpanding", "BAR='quote $FOO'", one("BAR", "quote $FOO")),
    Row(G + "TestExpanding", 'FOO="foo\\$BAR"', one("FOO", "foo$BAR")),
    Row(G + "TestExpanding", 'FOO="foo\\${BAR}"', one("FOO", "foo${BAR}")),
    Row(G + "TestExpanding", 'FOO=test\nBAR="foo\\${FOO} ${FOO}"', one("BAR", "foo${FOO} test")),
    Row(G + "TestExpanding", "FOO=$$literal", one("FOO", "$literal")),
    Row(G + "TestExpanding", "FOO=${UNSET:-fallback}", one("FOO", "fallback")),
    Row(G + "TestExpanding", "FOO=${UNSET:?needed here}", at(1, "required variable UNSET")),
    Row(G + "TestExpanding", "FOO=${bad", at(1, "invalid interpolation format")),
    Row(
        G + "TestVariableStringValueSeparator",
        'URLS="tcp://a:1\ntcp://b:2"',
        one("URLS", "tcp://a:1\ntcp://b:2"),
    ),
    Row(
        G + "TestLoadQuotedEnv",
        "J='first\nsecond\nthird'\nZ=last",
        {"J": "first\nsecond\nthird", "Z": "last"},
    ),
    Row(G + "TestLoadQuotedEnv", "D='\\n'\nH=\"\\n\"", {"D": "\\n", "H": "\n"}),
    Row(G + "TestLoadQuotedEnv", "C=''\nG=\"\"", {"C": "", "G": ""}),
    Row(G + "TestLoadQuotedEnv", "I=\"echo 'asd'\"", one("I", "echo 'asd'")),
    Row(G + "TestLoadUnquotedEnv", "A=some quoted phrase", one("A", "some quoted phrase")),
    Row(G + "TestLoadUnquotedEnv", "D=phrase special è char", one("D", "phrase special è char")),
    Row(
        G + "TestSubstitutions",
        "A=1\nB=${A}\nC=$B\nD=${A}_${B}\nE=${NOT_DEFINED}",
        {"A": "1", "B": "1", "C": "1", "D": "1_1", "E": ""},
    ),
    Row(
        G + "TestSubstitutionsWithEnvFilePrecedence",
        "A=1\nB=${A}\nC=$B\nD=${A}_${B}",
        {"A": "5", "B": "5", "C": "5", "D": "5_5"},
        env={"A": "5"},
    ),
    Row(
        G + "TestSubstitutionsWithEnvFileDefaultValuePrecedence",
        "A=${A:-1}\nB=${A}\nC=$B\nD=${A}_${B}",
        {"A": "5", "B": "5", "C": "5", "D": "5_5"},
        env={"A": "5"},
    ),
    Row(
        G + "TestSubstitutionsWithUnsetVarEnvFileDefaultValuePrecedence",
        "A=${A:-1}\nB=${A}\nC=$B\nD=${A}_${B}",
        {"A": "1", "B": "1", "C": "1", "D": "1_1"},
    ),
    Row(
        G + "TestLoadDoesNotOverride",
        "A=1\nB=2",
        {"A": "kept", "B": ""},
        env={"A": "kept", "B": ""},
    ),
    Row(G + "TestUTF8BOM", "\ufeffA=1\nB=2", {"A": "1", "B": "2"}),
    Row(G + "TestUTF8BOM", b"\xef\xbb\xbfFIRST=bom\n", one("FIRST", "bom")),
    Row(P + "TestParseBytes", "\na=b\nu\u00e1=x\n", {"a": "b"}),
    Row(P + "TestParseVariable", "%!(EXTRA string)=foo", at(1, "unexpected character '%'")),
    Row(SPEC, "VAR=VAL", one("VAR", "VAL")),
    Row(SPEC, 'VAR="VAL"', one("VAR", "VAL")),
    Row(SPEC, "VAR='VAL'", one("VAR", "VAL")),
    Row(SPEC, "VAR: VAL", one("VAR", "VAL")),
    Row(SPEC, "VAR = VAL  ", one("VAR", "VAL")),
    Row(SPEC, "VAR=VAL # comment", one("VAR", "VAL")),
    Row(SPEC, "VAR=VAL# not a comment", one("VAR", "VAL# not a comment")),
    Row(SPEC, 'VAR="VAL # not a comment"', one("VAR", "VAL # not a comment")),
    Row(SPEC, 'VAR="VAL" # comment', one("VAR", "VAL")),
    Row(SPEC, "VAR='$OTHER'", one("VAR", "$OTHER"), env={"OTHER": "no"}),
    Row(SPEC, "VAR='${OTHER}'", one("VAR", "${OTHER}"), env={"OTHER": "no"}),
    Row(SPEC + " (compose-go #511)", "VAR='Let\\'s go!'", one("VAR", "Let's go!")),
    Row(SPEC, 'VAR="{\\"hello\\": \\"json\\"}"', one("VAR", '{"hello": "json"}')),
    Row(SPEC, 'VAR="some\\tvalue"', one("VAR", "some\tvalue")),
    Row(SPEC, "VAR='some\\tvalue'", one("VAR", "some\\tvalue")),
    Row(SPEC, "VAR=some\\tvalue", one("VAR", "some\\tvalue")),
    Row(SPEC + " VAL omitted", "VAR=", one("VAR", "")),
    Row(SPEC + " =VAL omitted", "VAR", one("VAR", None)),
    Row(SPEC + " =VAL omitted", "VAR", one("VAR", "outside"), env={"VAR": "outside"}),
    Row(SPEC + " interpolation", "OTHER=x\nVAR=${OTHER}-y", one("VAR", "x-y")),
    Row(
        E2E + "env-interpolation",
        "WHEREAMI=EnvFile\nIMAGE=default_env:${WHEREAMI}\n",
        one("IMAGE", "default_env:shell"),
        env={"WHEREAMI": "shell"},
    ),
    Row(
        E2E + "env-interpolation",
        "WHEREAMI=EnvFile\nIMAGE=default_env:${WHEREAMI}\n",
        one("IMAGE", "default_env:EnvFile"),
    ),
    Row(
        E2E + "env-interpolation-default-value",
        "IMAGE=default_env:${WHEREAMI:-EnvFileDefaultValue}",
        one("IMAGE", "default_env:EnvFileDefaultValue"),
    ),
    Row(
        E2E + "env-self-reference",
        "REG=gcr.io/p\nNAME=app\nFULL=${REG}/${NAME}:latest\n",
        one("FULL", "gcr.io/p/app:latest"),
    ),
    Row(
        E2E + "TestCommentsInEnvFile",
        "COMMENT=1234 # comment\nNO_COMMENT=1234#5\n",
        {"COMMENT": "1234", "NO_COMMENT": "1234#5"},
    ),
    Row("issue 25: a key with a space", "GOOD=1\nBAD KEY=2", at(2, "key cannot contain a space")),
    Row("issue 25: KEY: value", "A: b c", one("A", "b c")),
    Row("issue 25: inline comment after quotes", "Q='v' # c\nN=x", {"Q": "v", "N": "x"}),
    Row(
        "issue 25: double quotes span lines",
        'M="one\ntwo"\nAFTER=1',
        {"M": "one\ntwo", "AFTER": "1"},
    ),
    Row("issue 25: \\$ in double quotes", 'P="a\\$b"', one("P", "a$b")),
]


def dotenv_values(root: Path, row: Row) -> dict[str, str | None] | Err:
    keys = list(row.expected) if isinstance(row.expected, dict) else []
    probes = ", ".join(f"{json.dumps(k)}: {json.dumps('${' + k + '-' + UNSET + '}')}" for k in keys)
    main = write(root, {".env": row.text, "holos.yaml": "services: {web: {image: debian:12}}\n"})
    main.write_text(main.read_text() + f"x-probe: {{{probes}}}\n")
    try:
        doc = load_file(main, environ=row.env)
    except HolosError as exc:
        return Err("\n".join(str(d) for d in exc.diagnostics))
    found = doc.data["x-probe"] or {}
    return {k: None if v == UNSET else v for k, v in found.items()}


@params(ROWS)
def test_dotenv(tmp_path: Path, row: Row) -> None:
    result = dotenv_values(tmp_path, row)
    if isinstance(row.expected, Err):
        assert isinstance(result, Err), f"expected an error, got {result!r}"
        lines = result.text.splitlines()
        assert row.expected.found_in(lines), lines
    else:
        assert result == row.expected
