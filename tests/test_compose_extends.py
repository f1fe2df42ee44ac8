"""`extends:` and compose's merge rules, row by row (compose-spec 05-services.md extends,
13-merge.md; compose-go override/merge_*_test.go, loader extends)."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from holosc.core.validate.checks import build_project
from holosc.errors import HolosError
from holosc.load.assemble import load_project
from holosc.load.files import HostFiles
from tests.compose_ref import Err, check_errors, facts, messages, params, write

SPEC = "05-services.md extends"
MERGE = "13-merge.md"
OVR = "override/"


@dataclasses.dataclass(frozen=True)
class Row:
    source: str
    files: dict[str, str]
    expected: dict[str, Any] | Err  # facts of service `cli` (see `facts`)
    env: dict[str, str] = dataclasses.field(default_factory=dict)
    profiles: tuple[str, ...] = ()


def main(services: str, top: str = "") -> str:
    return f"name: p\n{top}services:\n{services}"


COMMON_ENV = "  common: {image: debian:12, environment: {TZ: utc, PORT: '80'}}\n"
SECRETS = "secrets: {s1: {file: ./s1.txt}, s2: {file: ./s2.txt}}\n"
SECRET_FILES = {"s1.txt": "one", "s2.txt": "two"}

ROWS = [
    # Mappings merge key by key, the extending side winning.
    Row(
        SPEC + " Mappings",
        {
            "holos.yaml": main(
                COMMON_ENV + "  cli: {extends: {service: common}, environment: {PORT: '8080'}}\n"
            )
        },
        {"env": {"TZ": "utc", "PORT": "8080"}, "image": "debian:12"},
    ),
    Row(
        SPEC + " Mappings (array syntax)",
        {
            "holos.yaml": main(
                "  common: {image: debian:12, environment: [TZ=utc, PORT=80]}\n  cli: {extends: {service: common}, environment: [PORT=8080]}\n"
            )
        },
        {"env": {"TZ": "utc", "PORT": "8080"}},
    ),
    Row(
        OVR + "merge_environment_test.go Test_mergeYamlEnvironmentMixed",
        {
            "holos.yaml": main(
                COMMON_ENV + "  cli: {extends: common, environment: [PORT=8080, NEW=1]}\n"
            )
        },
        {"env": {"TZ": "utc", "PORT": "8080", "NEW": "1"}},
    ),
    Row(
        OVR + "merge_environment_test.go mixed, list first",
        {
            "holos.yaml": main(
                "  common: {image: debian:12, environment: [TZ=utc, PORT=80]}\n  cli: {extends: common, environment: {PORT: '8080'}}\n"
            )
        },
        {"env": {"TZ": "utc", "PORT": "8080"}},
    ),
    Row(
        OVR + "merge_environment_test.go Test_mergeYamlEnvironmentSequence",
        {
            "holos.yaml": main(
                "  common: {image: debian:12, environment: [FOO=BAR]}\n  cli: {extends: common, environment: [QIX=ZOT, EMPTY=, NIL]}\n"
            )
        },
        {"env": {"FOO": "BAR", "QIX": "ZOT", "EMPTY": ""}},
    ),
    Row(
        OVR + "merge_environment_test.go Test_mergeYamlEnvironmentMapping",
        {
            "holos.yaml": main(
                "  common: {image: debian:12, environment: {FOO: BAR}}\n  cli: {extends: common, environment: {EMPTY: '', NIL: null, QIX: ZOT}}\n"
            )
        },
        {"env": {"FOO": "BAR", "EMPTY": "", "NIL": "from env", "QIX": "ZOT"}},
        env={"NIL": "from env"},
    ),
    Row(
        SPEC + " bare key unsets",
        {
            "holos.yaml": main(
                "  common: {image: debian:12, environment: {K: base}}\n  cli: {extends: common, environment: [K]}\n"
            )
        },
        {"env": {}},
    ),
    # Scalars: the extending side wins; values not overridden are kept.
    Row(
        SPEC + " Scalars",
        {
            "holos.yaml": main(
                "  common: {image: debian:12, vm: {memory_mb: 1024, vcpu: 2}}\n  cli: {extends: common, image: alpine:3.21, vm: {memory_mb: 2048}}\n"
            )
        },
        {"image": "alpine:3.21", "memory": 2048, "vcpu": 2},
    ),
    Row(
        SPEC + " extends string form",
        {
            "holos.yaml": main(
                "  common: {image: debian:12, cloud_init: {user: admin}}\n  cli: {extends: common}\n"
            )
        },
        {"user": "admin", "image": "debian:12"},
    ),
    # Sequences append, the base's items first; identical items once.
    Row(
        SPEC + " Sequences",
        {
            "holos.yaml": main(
                "  common: {image: debian:12, cloud_init: {packages: [nginx]}}\n  cli: {extends: common, cloud_init: {packages: [curl]}}\n"
            )
        },
        {"packages": ["nginx", "curl"]},
    ),
    Row(
        OVR + "merge_dedup_test.go identical entries once",
        {
            "holos.yaml": main(
                "  common: {image: debian:12, cloud_init: {runcmd: [echo a]}}\n  cli: {extends: common, cloud_init: {runcmd: [echo a, echo b]}}\n"
            )
        },
        {"runcmd": ["echo a", "echo b"]},
    ),
    Row(
        MERGE + " Shell commands",
        {
            "holos.yaml": main(
                "  common: {image: debian:12, healthcheck: {test: [CMD, 'false'], retries: 5}}\n  cli: {extends: common, healthcheck: {test: [CMD, 'true']}}\n"
            )
        },
        {"test": ["true"]},
    ),
    # Volumes: the target is the key.
    Row(
        SPEC + " volumes by target",
        {
            "holos.yaml": main(
                "  common: {image: debian:12, volumes: ['common-volume:/var/lib/backup/data:rw']}\n"
                "  cli: {extends: common, volumes: ['cli-volume:/var/lib/backup/data:ro']}\n",
            )
            + "volumes: {common-volume: {}, cli-volume: {}}\n"
        },
        {"mounts": [("cli-volume", "/var/lib/backup/data", True)]},
    ),
    Row(
        MERGE + " Unique resources volumes",
        {
            "holos.yaml": main(
                "  common: {image: debian:12, volumes: ['./a:/a', './b:/work']}\n  cli: {extends: common, volumes: ['./c:/work']}\n"
            )
        },
        {"mounts": [("./a", "/a", False), ("./c", "/work", False)]},
    ),
    # Secrets: the target is the key (issue 25, class 5).
    Row(
        MERGE + " Unique resources secrets",
        {
            "holos.yaml": main(
                "  common: {image: debian:12, secrets: [s1]}\n  cli: {extends: common, secrets: [{source: s2, target: s1}]}\n",
                SECRETS,
            ),
            **SECRET_FILES,
        },
        {"secrets": [("s2", "/run/secrets/s1")]},
    ),
    Row(
        MERGE + " Unique resources secrets",
        {
            "holos.yaml": main(
                "  common: {image: debian:12, secrets: [{source: s1, target: /etc/app.key}]}\n"
                "  cli: {extends: common, secrets: [{source: s2, target: /etc/app.key}]}\n",
                SECRETS,
            ),
            **SECRET_FILES,
        },
        {"secrets": [("s2", "/etc/app.key")]},
    ),
    Row(
        MERGE + " Unique resources secrets",
        {
            "holos.yaml": main(
                "  common: {image: debian:12, secrets: [s1]}\n  cli: {extends: common, secrets: [s2]}\n",
                SECRETS,
            ),
            **SECRET_FILES,
        },
        {"secrets": [("s1", "/run/secrets/s1"), ("s2", "/run/secrets/s2")]},
    ),
    Row(
        MERGE + " Unique resources secrets",
        {
            "holos.yaml": main(
                "  common: {image: debian:12, secrets: [s1]}\n  cli: {extends: common, secrets: [s1]}\n",
                SECRETS,
            ),
            **SECRET_FILES,
        },
        {"secrets": [("s1", "/run/secrets/s1")]},
    ),
    # Ports: one entry per port definition.
    Row(
        MERGE + " Unique resources ports",
        {
            "holos.yaml": main(
                "  cli: {extends: {service: common, file: lib.yaml}, ports: ['8080:80']}\n"
            ),
            "lib.yaml": "services:\n  common: {image: debian:12, ports: ['8080:80']}\n",
        },
        {"ports": [(8080, 80)]},
    ),
    Row(
        MERGE + " Unique resources ports",
        {
            "holos.yaml": main(
                "  cli: {extends: {service: common, file: lib.yaml}, ports: ['8443:443']}\n"
            ),
            "lib.yaml": "services:\n  common: {image: debian:12, ports: ['8080:80']}\n",
        },
        {"ports": [(8080, 80), (8443, 443)]},
    ),
    # env_file: a string appends like a list (issue 25, class 5).
    Row(
        OVR + "merge_env_file_test.go TestMergeEnvFilesString",
        {
            "holos.yaml": main(
                "  common: {image: debian:12, env_file: a.env}\n  cli: {extends: common, env_file: b.env}\n"
            ),
            "a.env": "A=1\nK=a\n",
            "b.env": "B=2\nK=b\n",
        },
        {"env": {"A": "1", "B": "2", "K": "b"}},
    ),
    Row(
        OVR + "merge_env_file_test.go StringThenSequence",
        {
            "holos.yaml": main(
                "  common: {image: debian:12, env_file: a.env}\n  cli: {extends: common, env_file: [b.env]}\n"
            ),
            "a.env": "A=1\n",
            "b.env": "B=2\n",
        },
        {"env": {"A": "1", "B": "2"}},
    ),
    Row(
        OVR + "merge_env_file_test.go SequenceThenString",
        {
            "holos.yaml": main(
                "  common: {image: debian:12, env_file: [a.env]}\n  cli: {extends: common, env_file: b.env}\n"
            ),
            "a.env": "A=1\n",
            "b.env": "B=2\n",
        },
        {"env": {"A": "1", "B": "2"}},
    ),
    Row(
        OVR + "merge_env_file_test.go TestMergeEnvFilesSequence",
        {
            "holos.yaml": main(
                "  common: {image: debian:12, env_file: [a.env]}\n  cli: {extends: common, env_file: [b.env, c.env]}\n"
            ),
            "a.env": "K=a\n",
            "b.env": "K=b\n",
            "c.env": "K=c\n",
        },
        {"env": {"K": "c"}},
    ),
    # depends_on: by service, whatever form each side has.
    Row(
        OVR + "mergeDependsOn",
        {
            "holos.yaml": main(
                "  db: {image: debian:12}\n  cache: {image: debian:12}\n  common: {image: debian:12, depends_on: [db]}\n"
                "  cli: {extends: common, depends_on: {cache: {condition: service_started}}}\n"
            )
        },
        {"depends": [("db", None), ("cache", "service_started")]},
    ),
    Row(
        OVR + "mergeDependsOn",
        {
            "holos.yaml": main(
                "  db: {image: debian:12}\n  cache: {image: debian:12}\n  common: {image: debian:12, depends_on: {db: {condition: service_started}}}\n"
                "  cli: {extends: common, depends_on: [cache]}\n"
            )
        },
        {"depends": [("db", "service_started"), ("cache", None)]},
    ),
    Row(
        OVR + "mergeDependsOn",
        {
            "holos.yaml": main(
                "  db: {image: debian:12}\n  common: {image: debian:12, depends_on: [db]}\n  cli: {extends: common, depends_on: [db]}\n"
            )
        },
        {"depends": [("db", None)]},
    ),
    # Profiles: one each.
    Row(
        OVR + "merge_profiles_test.go",
        {
            "holos.yaml": main(
                "  common: {image: debian:12, profiles: [debug]}\n  cli: {extends: common, profiles: [test]}\n"
            )
        },
        {"image": "debian:12"},
        profiles=("debug",),
    ),
    # Chains, in the file and across files at any depth (issue 25, class 5).
    Row(
        SPEC + " chain",
        {
            "holos.yaml": main(
                "  base: {image: debian:12, cloud_init: {user: root}}\n  common: {image: debian:12, extends: {service: base}}\n"
                "  cli: {extends: {service: common}}\n"
            )
        },
        {"user": "root"},
    ),
    Row(
        SPEC + " file",
        {
            "holos.yaml": main("  cli: {extends: {service: webapp, file: common.yml}}\n"),
            "common.yml": "services:\n  webapp: {image: debian:12, vm: {memory_mb: 777}}\n",
        },
        {"memory": 777, "image": "debian:12"},
    ),
    Row(
        SPEC + " file, two levels",
        {
            "holos.yaml": main("  cli: {extends: {service: web, file: a/web.yaml}}\n"),
            "a/web.yaml": "services:\n  web: {extends: {service: base, file: ../b/base.yaml}, vm: {vcpu: 3}}\n",
            "b/base.yaml": "services:\n  base: {image: debian:12, vm: {memory_mb: 640}}\n",
        },
        {"memory": 640, "vcpu": 3, "image": "debian:12"},
    ),
    Row(
        SPEC + " file, chain inside it",
        {
            "holos.yaml": main("  cli: {extends: {service: web, file: lib.yaml}}\n"),
            "lib.yaml": "services:\n  base: {image: debian:12, cloud_init: {user: deploy}}\n  web: {extends: base, vm: {vcpu: 2}}\n",
        },
        {"user": "deploy", "vcpu": 2},
    ),
    Row(
        SPEC + " file, three levels",
        {
            "holos.yaml": main("  cli: {extends: {service: a, file: x/a.yaml}}\n"),
            "x/a.yaml": "services:\n  a: {extends: {service: b, file: y/b.yaml}}\n",
            "x/y/b.yaml": "services:\n  b: {extends: {service: c, file: ../../c.yaml}, vm: {vcpu: 4}}\n",
            "c.yaml": "services:\n  c: {image: debian:12, vm: {memory_mb: 900}}\n",
        },
        {"memory": 900, "vcpu": 4},
    ),
    Row(
        SPEC + " file interpolated with the project's environment",
        {
            "holos.yaml": main("  cli: {extends: {service: web, file: lib/web.yaml}}\n"),
            ".env": "IMG=debian:12\n",
            "lib/.env": "IMG=alpine:3.21\n",
            "lib/web.yaml": "services:\n  web: {image: '${IMG}'}\n",
        },
        {"image": "debian:12"},
    ),
    Row(
        SPEC + " several services, one base",
        {
            "holos.yaml": main(
                "  common: {image: debian:12, cloud_init: {packages: [a]}}\n  other: {extends: common, cloud_init: {packages: [b]}}\n"
                "  cli: {extends: common, cloud_init: {packages: [c]}}\n"
            )
        },
        {"packages": ["a", "c"]},
    ),
    # Errors.
    Row(
        SPEC + " service not found",
        {"holos.yaml": main("  cli: {extends: ghost, image: debian:12}\n")},
        Err("extends unknown service 'ghost'"),
    ),
    Row(
        SPEC + " service not found in file",
        {
            "holos.yaml": main("  cli: {extends: {service: ghost, file: lib.yaml}}\n"),
            "lib.yaml": "services:\n  web: {image: debian:12}\n",
        },
        Err("lib.yaml has no service 'ghost'"),
    ),
    Row(
        SPEC + " file not found",
        {"holos.yaml": main("  cli: {extends: {service: web, file: nope.yaml}}\n")},
        Err("cannot read nope.yaml"),
    ),
    Row(
        SPEC + " circular",
        {
            "holos.yaml": main(
                "  cli: {extends: other, image: debian:12}\n  other: {extends: cli}\n"
            )
        },
        Err("extends cycle: cli -> other -> cli"),
    ),
    Row(
        SPEC + " circular across files",
        {
            "holos.yaml": main("  cli: {extends: {service: a, file: a.yaml}, image: debian:12}\n"),
            "a.yaml": "services:\n  a: {extends: {service: b, file: b.yaml}}\n",
            "b.yaml": "services:\n  b: {extends: {service: a, file: a.yaml}}\n",
        },
        Err("extends cycle"),
    ),
]


@params(ROWS)
def test_extends(tmp_path: Path, row: Row) -> None:
    try:
        doc = load_project(write(tmp_path, row.files), environ=row.env)
        result: Any = build_project(doc, HostFiles(), profiles=row.profiles).project
    except HolosError as exc:
        result = Err("\n".join(messages(exc)))
    if isinstance(row.expected, Err):
        check_errors(result, row.expected)
        return
    assert not isinstance(result, Err), result.text
    found = facts(result.service("cli"))
    assert {k: found[k] for k in row.expected} == row.expected
