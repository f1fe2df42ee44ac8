"""`include:`, row by row against compose's reference behaviour (compose-spec 14-include.md,
compose-go loader/include_test.go and include.go)."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from tests.compose_ref import Err, check_errors, facts, outcome, params

SPEC = "14-include.md"
GO = "include_test.go "
INC = "include.go "


@dataclasses.dataclass(frozen=True)
class Row:
    source: str
    files: dict[str, str]
    expected: dict[str, dict[str, Any]] | Err  # service -> facts (tests.compose_ref.facts)
    env: dict[str, str] = dataclasses.field(default_factory=dict)


def main(include: str, services: str = "  web: {image: debian:12}\n") -> str:
    return f"name: p\ninclude: {include}\n" + (f"services:\n{services}" if services else "")


SUB = "services:\n  db: {image: debian:12, volumes: ['./data:/data']}\n"
SUB_IMG = "services:\n  db: {image: '${IMG}'}\n"

ROWS = [
    Row(
        SPEC + " short syntax",
        {"holos.yaml": main("[sub/holos.yaml]"), "sub/holos.yaml": SUB},
        {"db": {"mounts": [("./sub/data", "/data", False)], "image": "debian:12"}},
    ),
    Row(
        SPEC + " short syntax, depends_on an included service",
        {
            "holos.yaml": main("[sub/holos.yaml]", "  web: {image: debian:12, depends_on: [db]}\n"),
            "sub/holos.yaml": SUB,
        },
        {"web": {"depends": [("db", None)]}},
    ),
    Row(
        SPEC + " short syntax .env",
        {
            "holos.yaml": main("[sub/holos.yaml]"),
            "sub/holos.yaml": SUB_IMG,
            "sub/.env": "IMG=alpine:3.21\n",
        },
        {"db": {"image": "alpine:3.21"}},
    ),
    Row(
        SPEC + " overridden by the local project's environment",
        {
            "holos.yaml": main("[sub/holos.yaml]"),
            "sub/holos.yaml": SUB_IMG,
            "sub/.env": "IMG=alpine:3.21\n",
        },
        {"db": {"image": "debian:12"}},
        env={"IMG": "debian:12"},
    ),
    Row(
        SPEC + " overridden by the local project's .env",
        {
            "holos.yaml": main("[sub/holos.yaml]"),
            ".env": "IMG=ubuntu:noble\n",
            "sub/holos.yaml": SUB_IMG,
            "sub/.env": "IMG=alpine:3.21\n",
        },
        {"db": {"image": "ubuntu:noble"}},
    ),
    Row(
        SPEC + " the included .env stays there",
        {
            "holos.yaml": main("[sub/holos.yaml]", "  web: {image: '${IMG:-debian:12}'}\n"),
            "sub/holos.yaml": SUB_IMG,
            "sub/.env": "IMG=alpine:3.21\n",
        },
        {"web": {"image": "debian:12"}, "db": {"image": "alpine:3.21"}},
    ),
    Row(
        SPEC + " .env interpolated with the including environment",
        {
            "holos.yaml": main("[sub/holos.yaml]"),
            ".env": "TAG=3.21\n",
            "sub/holos.yaml": SUB_IMG,
            "sub/.env": "IMG=alpine:${TAG}\n",
        },
        {"db": {"image": "alpine:3.21"}},
    ),
    Row(
        SPEC + " long syntax env_file",
        {
            "holos.yaml": main("[{path: sub/holos.yaml, env_file: other.env}]"),
            "sub/holos.yaml": SUB_IMG,
            "sub/.env": "IMG=ignored\n",
            "other.env": "IMG=alpine:3.21\n",
        },
        {"db": {"image": "alpine:3.21"}},
    ),
    Row(
        SPEC + " long syntax env_file list",
        {
            "holos.yaml": main("[{path: sub/holos.yaml, env_file: [a.env, b.env]}]"),
            "sub/holos.yaml": SUB_IMG,
            "a.env": "IMG=debian:12\n",
            "b.env": "IMG=alpine:3.21\n",
        },
        {"db": {"image": "alpine:3.21"}},
    ),
    Row(
        SPEC + " long syntax env_file list, later sees earlier",
        {
            "holos.yaml": main("[{path: sub/holos.yaml, env_file: [a.env, b.env]}]"),
            "sub/holos.yaml": SUB_IMG,
            "a.env": "T=3.21\n",
            "b.env": "IMG=alpine:${T}\n",
        },
        {"db": {"image": "alpine:3.21"}},
    ),
    Row(
        SPEC + " long syntax env_file, environment wins",
        {
            "holos.yaml": main("[{path: sub/holos.yaml, env_file: other.env}]"),
            "sub/holos.yaml": SUB_IMG,
            "other.env": "IMG=alpine:3.21\n",
        },
        {"db": {"image": "debian:12"}},
        env={"IMG": "debian:12"},
    ),
    Row(
        INC + " env_file must exist",
        {
            "holos.yaml": main("[{path: sub/holos.yaml, env_file: missing.env}]"),
            "sub/holos.yaml": SUB,
        },
        Err("missing.env"),
    ),
    Row(
        INC + " env_file required: false",
        {
            "holos.yaml": main(
                "[{path: sub/holos.yaml, env_file: [{path: missing.env, required: false}]}]"
            ),
            "sub/holos.yaml": SUB,
        },
        {"db": {"image": "debian:12"}},
    ),
    Row(
        SPEC + " long syntax env_file format raw",
        {
            "holos.yaml": main(
                "[{path: sub/holos.yaml, env_file: [{path: raw.env, format: raw}]}]"
            ),
            "sub/holos.yaml": "services:\n  db: {image: debian:12, environment: {V: '${V}'}}\n",
            "raw.env": "V='$x'\n",
        },
        {"db": {"env": {"V": "'$x'"}}},
    ),
    Row(
        SPEC + " project_directory",
        {
            "holos.yaml": main("[{path: sub/holos.yaml, project_directory: .}]"),
            "sub/holos.yaml": SUB,
        },
        {"db": {"mounts": [("./data", "/data", False)]}},
    ),
    Row(
        SPEC + " project_directory .env",
        {
            "holos.yaml": main("[{path: sub/holos.yaml, project_directory: other}]"),
            "sub/holos.yaml": SUB_IMG,
            "sub/.env": "IMG=debian:12\n",
            "other/.env": "IMG=alpine:3.21\n",
        },
        {"db": {"image": "alpine:3.21"}},
    ),
    Row(
        GO + "TestIncludeWithProjectDirectory",
        {
            "holos.yaml": main("[{path: inc/holos.yaml, project_directory: proj}]"),
            "inc/holos.yaml": "services:\n  svc: {image: debian:12, volumes: ['./src:/src'], env_file: [extra.env]}\n",
            "proj/extra.env": "E=1\n",
        },
        {"svc": {"mounts": [("./proj/src", "/src", False)], "env": {"E": "1"}}},
    ),
    Row(
        SPEC + " path list merged",
        {
            "holos.yaml": main("[{path: [sub/holos.yaml, sub/override.yaml]}]"),
            "sub/holos.yaml": SUB,
            "sub/override.yaml": "services:\n  db: {vm: {memory_mb: 2048}}\n",
        },
        {"db": {"memory": 2048, "image": "debian:12", "mounts": [("./sub/data", "/data", False)]}},
    ),
    Row(
        SPEC + " path list, paths from the project directory",
        {
            "holos.yaml": main("[{path: [sub/holos.yaml, other/override.yaml]}]"),
            "sub/holos.yaml": SUB,
            "other/override.yaml": "services:\n  db: {volumes: ['./more:/more']}\n",
        },
        {"db": {"mounts": [("./sub/data", "/data", False), ("./sub/more", "/more", False)]}},
    ),
    Row(
        GO + "TestLoadWithIncludeEnv",
        {
            "holos.yaml": main(
                "[{path: [module/holos.yaml], env_file: [custom.env]}]",
                "  a: {image: debian:12, environment: [VAR_NAME]}\n",
            ),
            "custom.env": "VAR_NAME=value\n",
            "module/holos.yaml": "services:\n  b: {image: debian:12, environment: [VAR_NAME]}\n"
            "  c: {image: debian:12, environment: [VAR_NAME]}\n",
        },
        {
            "a": {"env": {}},
            "b": {"env": {"VAR_NAME": "value"}},
            "c": {"env": {"VAR_NAME": "value"}},
        },
    ),
    Row(
        GO + "TestNestedIncludeAndExtends",
        {
            "holos.yaml": main("[{project_directory: ., path: dir/included.yaml}]", ""),
            "dir/included.yaml": "services:\n  included: {extends: {file: dir/extended.yaml, service: extended}}\n",
            "dir/extended.yaml": "services:\n  extended: {image: alpine:3.21}\n",
        },
        {"included": {"image": "alpine:3.21"}},
    ),
    Row(
        GO + "TestLoadWithMultipleInclude",
        {
            "holos.yaml": main("[a/holos.yaml, b/holos.yaml]"),
            "a/holos.yaml": "include: [../common/holos.yaml]\nservices: {}\n",
            "b/holos.yaml": "include: [../common/holos.yaml]\nservices: {}\n",
            "common/holos.yaml": "services:\n  imported: {image: '${SOURCE:-debian:12}', volumes: ['./x:/x']}\n",
        },
        {"imported": {"image": "alpine:3.21", "mounts": [("./common/x", "/x", False)]}},
        env={"SOURCE": "alpine:3.21"},
    ),
    Row(
        GO + "TestLoadWithMultipleIncludeConflict",
        {
            "holos.yaml": main("[inc.yaml]", "  bar: {image: debian:12, environment: [ZOT=QIX]}\n"),
            "inc.yaml": "services:\n  bar: {image: alpine:3.21, vm: {memory_mb: 1024}, environment: [A=1]}\n",
        },
        {"bar": {"image": "debian:12", "memory": 1024, "env": {"A": "1", "ZOT": "QIX"}}},
    ),
    Row(
        INC + " importResource, earlier include wins",
        {
            "holos.yaml": main("[a.yaml, b.yaml]", ""),
            "a.yaml": "services:\n  s: {image: debian:12}\n",
            "b.yaml": "services:\n  s: {image: alpine:3.21, vm: {vcpu: 2}}\n",
        },
        {"s": {"image": "debian:12", "vcpu": 2}},
    ),
    Row(
        SPEC + " recursive",
        {
            "holos.yaml": main("[a/holos.yaml]"),
            "a/holos.yaml": "include: [b/holos.yaml]\nservices: {}\n",
            "a/b/holos.yaml": "services:\n  deep: {image: '${IMG}', volumes: ['../../top:/t', './here:/h']}\n",
            "a/b/.env": "IMG=alpine:3.21\n",
        },
        {
            "deep": {
                "image": "alpine:3.21",
                "mounts": [("./top", "/t", False), ("./a/b/here", "/h", False)],
            }
        },
    ),
    Row(
        SPEC + " recursive, .env of each level",
        {
            "holos.yaml": main("[a/holos.yaml]"),
            "a/holos.yaml": "include: [b/holos.yaml]\nservices: {}\n",
            "a/.env": "IMG=debian:12\n",
            "a/b/holos.yaml": SUB_IMG,
            "a/b/.env": "IMG=alpine:3.21\n",
        },
        {"db": {"image": "debian:12"}},
    ),
    Row(
        SPEC + " interpolated path",
        {"holos.yaml": main("['${INCLUDE_PATH:?FOO}/holos.yaml']"), "sub/holos.yaml": SUB},
        {"db": {"image": "debian:12"}},
        env={"INCLUDE_PATH": "sub"},
    ),
    Row(
        SPEC + " interpolated path, mandatory",
        {"holos.yaml": main("['${INCLUDE_PATH:?FOO}/holos.yaml']")},
        Err("required variable INCLUDE_PATH is missing a value: FOO"),
    ),
    Row(
        SPEC + " env_file of an included service",
        {
            "holos.yaml": main("[sub/holos.yaml]"),
            "sub/holos.yaml": "services:\n  db: {image: debian:12, env_file: [db.env, {path: opt.env, required: false}]}\n",
            "sub/db.env": "D=1\n",
        },
        {"db": {"env": {"D": "1"}}},
    ),
    Row(
        SPEC + " volumes and secrets join",
        {
            "holos.yaml": main("[sub/holos.yaml]"),
            "sub/holos.yaml": "services:\n  db: {image: debian:12, volumes: ['data:/data'], secrets: [pw]}\n"
            "volumes: {data: {}}\nsecrets: {pw: {file: ./pw.txt}}\n",
            "sub/pw.txt": "secret",
        },
        {"db": {"mounts": [("data", "/data", False)], "secrets": [("pw", "/run/secrets/pw")]}},
    ),
    Row(
        INC + " include cycle detected",
        {"holos.yaml": main("[a.yaml]"), "a.yaml": "include: [holos.yaml]\nservices: {}\n"},
        Err("include cycle"),
    ),
    Row(
        INC + " missing file", {"holos.yaml": main("[nope.yaml]")}, Err("cannot include nope.yaml")
    ),
]


@params(ROWS)
def test_include(tmp_path: Path, row: Row) -> None:
    result = outcome(tmp_path, row.files, row.env)
    if isinstance(row.expected, Err):
        check_errors(result, row.expected)
        return
    assert not isinstance(result, Err), result.text
    for name, expected in row.expected.items():
        found = facts(result.service(name))
        assert {k: found[k] for k in expected} == expected, name
