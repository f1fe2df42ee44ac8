"""A service's environment as compose resolves it: `environment:`, `env_file:` and the
project environment, row by row (compose-go types/project.go WithServicesEnvironmentResolved
and dotenv, compose-spec 05-services.md env_file/environment, docker/compose e2e
compose_environment_test.go). What is checked is what reaches the guest."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from tests.compose_ref import Err, check_errors, guest_env, outcome, params

R = "project.go WithServicesEnvironmentResolved"
SPEC_ENV = "05-services.md environment"
SPEC_FILE = "05-services.md env_file"
E2E = "compose_environment_test.go "


@dataclasses.dataclass(frozen=True)
class Row:
    source: str
    service: str  # the service's keys, as YAML flow mapping content
    files: dict[str, str]
    expected: dict[str, str | None] | Err  # None: not in the guest's environment
    env: dict[str, str] = dataclasses.field(default_factory=dict)
    ours: str | None = None  # a documented difference: why holosc errs instead


def app(service: str) -> str:
    return f"name: p\nservices:\n  app: {{image: debian:12, {service}}}\n"


ROWS = [
    # Values of env files are interpolated (issue 25, class 1).
    Row(
        E2E + "TestEnvInterpolation",
        "env_file: a.env",
        {"a.env": "IMAGE=default_env:${WHEREAMI}\n"},
        {"IMAGE": "default_env:shell"},
        env={"WHEREAMI": "shell"},
    ),
    Row(
        "issue 25 class 1",
        "env_file: a.env",
        {"a.env": "HALLO=$TEST\n"},
        {"HALLO": "x"},
        env={"TEST": "x"},
    ),
    Row("issue 25 class 1", "env_file: a.env", {"a.env": "HALLO=$TEST\n"}, {"HALLO": ""}),
    Row(R + " lines before", "env_file: a.env", {"a.env": "A=1\nB=${A}2\n"}, {"A": "1", "B": "12"}),
    Row(
        R + " project first",
        "env_file: a.env",
        {"a.env": "A=1\nB=$A\n"},
        {"A": "1", "B": "env"},
        env={"A": "env"},
    ),
    Row(
        R + " .env in project",
        "env_file: a.env",
        {".env": "P=dot\n", "a.env": "Q=${P}!\n"},
        {"Q": "dot!", "P": None},
    ),
    Row(
        R + " then environment",
        "environment: {BASE: /srv}, env_file: a.env",
        {"a.env": "DATA=${BASE}/data\n"},
        {"DATA": "/srv/data", "BASE": "/srv"},
    ),
    Row(
        R + " project over environment",
        "environment: {P: svc}, env_file: a.env",
        {"a.env": "Q=$P\n"},
        {"Q": "proj", "P": "svc"},
        env={"P": "proj"},
    ),
    Row(
        R + " single quotes literal",
        "env_file: a.env",
        {"a.env": "S='$HOME'\n"},
        {"S": "$HOME"},
        env={"HOME": "/h"},
    ),
    Row(R + " $$", "env_file: a.env", {"a.env": "S=$$HOME\n"}, {"S": "$HOME"}),
    Row(R + " default", "env_file: a.env", {"a.env": "S=${NOPE:-d}\n"}, {"S": "d"}),
    Row(
        R + " required",
        "env_file: a.env",
        {"a.env": "OK=1\nS=${NOPE:?set NOPE}\n"},
        Err("a.env:2: required variable NOPE is missing a value: set NOPE"),
    ),
    # A bare KEY line takes the value from the environment (issue 25, class 4).
    Row(
        SPEC_FILE + " =VAL omitted",
        "env_file: a.env",
        {"a.env": "FROM_ENV\n"},
        {"FROM_ENV": "v"},
        env={"FROM_ENV": "v"},
    ),
    Row(
        SPEC_FILE + " =VAL omitted", "env_file: a.env", {"a.env": "FROM_ENV\n"}, {"FROM_ENV": None}
    ),
    Row(
        SPEC_FILE + " =VAL omitted",
        "env_file: a.env",
        {".env": "FROM_ENV=dot\n", "a.env": "FROM_ENV\n"},
        {"FROM_ENV": "dot"},
    ),
    Row(
        R + " inherited from environment:",
        "environment: {K: svc}, env_file: a.env",
        {"a.env": "K\n"},
        {"K": "svc"},
    ),
    Row(SPEC_FILE + " VAL omitted", "env_file: a.env", {"a.env": "EMPTY=\n"}, {"EMPTY": ""}),
    # environment: wins, a bare KEY included (issue 25, class 4).
    Row(
        SPEC_ENV + " precedence",
        "environment: {K: yaml}, env_file: a.env",
        {"a.env": "K=file\n"},
        {"K": "yaml"},
    ),
    Row(
        SPEC_ENV + " precedence",
        "environment: [K=yaml], env_file: a.env",
        {"a.env": "K=file\n"},
        {"K": "yaml"},
    ),
    Row(
        SPEC_FILE + " even if undefined",
        "environment: [K], env_file: a.env",
        {"a.env": "K=file\n"},
        {"K": None},
    ),
    Row(
        SPEC_FILE + " even if empty",
        "environment: [K=], env_file: a.env",
        {"a.env": "K=file\n"},
        {"K": ""},
    ),
    Row(
        SPEC_ENV + " single key",
        "environment: [USER_INPUT]",
        {},
        {"USER_INPUT": "in"},
        env={"USER_INPUT": "in"},
    ),
    Row(SPEC_ENV + " single key", "environment: [USER_INPUT]", {}, {"USER_INPUT": None}),
    Row(
        SPEC_ENV + " single key",
        "environment: {USER_INPUT: null}",
        {},
        {"USER_INPUT": "in"},
        env={"USER_INPUT": "in"},
    ),
    Row(SPEC_ENV + " single key", "environment: {USER_INPUT: }", {}, {"USER_INPUT": None}),
    Row(
        SPEC_ENV + " single key from .env",
        "environment: [FROM_DOT]",
        {".env": "FROM_DOT=d\n"},
        {"FROM_DOT": "d"},
    ),
    Row(
        SPEC_ENV + " single key",
        "environment: [SET_EMPTY]",
        {},
        {"SET_EMPTY": ""},
        env={"SET_EMPTY": ""},
    ),
    Row(E2E + "TestUnsetEnv", "environment: [EMPTY]", {}, {"EMPTY": None}),
    Row(
        E2E + "TestUnsetEnv", "environment: [EMPTY]", {}, {"EMPTY": "hello"}, env={"EMPTY": "hello"}
    ),
    Row(
        E2E + "TestEnvPriority env file",
        "env_file: e.env",
        {"e.env": "WHEREAMI=Env File\n"},
        {"WHEREAMI": "Env File"},
    ),
    Row(
        E2E + "TestEnvPriority compose file",
        "environment: {WHEREAMI: Compose File}, env_file: e.env",
        {"e.env": "WHEREAMI=Env File\n"},
        {"WHEREAMI": "Compose File"},
    ),
    Row(
        E2E + "TestEnvPriority interpolated",
        "environment: {WHEREAMI: '${WHEREAMI:-default}'}",
        {},
        {"WHEREAMI": "shell"},
        env={"WHEREAMI": "shell"},
    ),
    # Several files: in order, later ones win and see the earlier ones.
    Row(
        SPEC_FILE + " list",
        "env_file: [a.env, b.env]",
        {"a.env": "K=a\nA=1\n", "b.env": "K=b\n"},
        {"K": "b", "A": "1"},
    ),
    Row(
        SPEC_FILE + " list",
        "env_file: [a.env, b.env]",
        {"a.env": "A=1\n", "b.env": "B=${A}+\n"},
        {"B": "1+"},
    ),
    Row(
        SPEC_FILE + " required",
        "env_file: [{path: nope.env, required: false}, a.env]",
        {"a.env": "A=1\n"},
        {"A": "1"},
    ),
    Row(
        SPEC_FILE + " required",
        "env_file: [{path: nope.env, required: true}]",
        {},
        Err("cannot read env_file nope.env"),
    ),
    Row(SPEC_FILE + " required", "env_file: nope.env", {}, Err("cannot read env_file nope.env")),
    Row(SPEC_FILE + " required", "env_file: [{path: a.env}]", {"a.env": "A=1\n"}, {"A": "1"}),
    Row(
        SPEC_FILE + " format raw",
        "env_file: [{path: a.env, format: raw}]",
        {"a.env": 'Q="x"\nD=$HOME\n'},
        {"Q": '"x"', "D": "$HOME"},
        env={"HOME": "/h"},
    ),
    Row(
        SPEC_FILE + " format raw",
        "env_file: [{path: a.env, format: raw}]",
        {"a.env": "# c\n  K=v v \nINH\n"},
        {"K": "v v ", "INH": "i"},
        env={"INH": "i"},
    ),
    # The format, as in a project .env.
    Row(
        SPEC_FILE + " format",
        "env_file: a.env",
        {"a.env": "export A=1\nB: 2\nC='3' # c\n"},
        {"A": "1", "B": "2", "C": "3"},
    ),
    Row(SPEC_FILE + " format", "env_file: a.env", {"a.env": "\ufeffBOM=1\n"}, {"BOM": "1"}),
    Row(
        SPEC_FILE + " format", "env_file: a.env", {"a.env": "Q='Let\\'s go!'\n"}, {"Q": "Let's go!"}
    ),
    Row(
        SPEC_FILE + " format", "env_file: a.env", {"a.env": 'J="{\\"a\\": 1}"\n'}, {"J": '{"a": 1}'}
    ),
    Row(
        SPEC_FILE + " errors",
        "env_file: a.env",
        {"a.env": 'A=1\nB="open\n'},
        Err("a.env:2: unterminated quoted value"),
    ),
    Row(
        SPEC_FILE + " errors",
        "env_file: a.env",
        {"a.env": "A=1\nBAD KEY=2\n"},
        Err("a.env:2: key cannot contain a space"),
    ),
    Row(
        SPEC_FILE + " errors",
        "env_file: a.env",
        {"a.env": "lol$wut\n"},
        Err("a.env:1: unexpected character '$'"),
    ),
    Row(SPEC_FILE + " unset warns", "env_file: a.env", {"a.env": "A=$NOPE\n"}, {"A": ""}),
    # What a guest cannot take: loud, documented differences.
    Row(
        "godotenv_test.go TestDash",
        "env_file: a.env",
        {"a.env": "VAR-WITH-DASHES=dashes\n"},
        Err("'VAR-WITH-DASHES' is not a variable name"),
        ours="a guest shell cannot export the name",
    ),
    Row(
        "godotenv_test.go TestParsing dots",
        "env_file: a.env",
        {"a.env": "FOO.BAR=foobar\n"},
        Err("'FOO.BAR' is not a variable name"),
        ours="a guest shell cannot export the name",
    ),
    Row(
        "godotenv_test.go TestVariableStringValueSeparator",
        "env_file: a.env",
        {"a.env": 'M="a\nb"\n'},
        Err("the value of M has a line break"),
        ours="sshd_config's SetEnv holds one line",
    ),
    Row(
        "godotenv_test.go TestParsing empty key",
        "env_file: a.env",
        {"a.env": '="value"\n'},
        Err("'' is not a variable name"),
        ours="a variable needs a name",
    ),
]


@params(ROWS)
def test_service_environment(tmp_path: Path, row: Row) -> None:
    files = {"holos.yaml": app(row.service), **row.files}
    result = outcome(tmp_path, files, row.env)
    if isinstance(row.expected, Err):
        check_errors(result, row.expected)
        return
    assert not isinstance(result, Err), result.text
    env = guest_env(result.service("app"))
    assert {k: env.get(k) for k in row.expected} == row.expected


def test_an_unset_variable_in_an_env_file_is_a_warning(tmp_path: Path) -> None:
    from tests.compose_ref import build

    _, warnings = build(tmp_path, {"holos.yaml": app("env_file: a.env"), "a.env": "A=$NOPE\n"})
    assert any("a.env:1: variable NOPE is not set" in w for w in warnings), warnings
