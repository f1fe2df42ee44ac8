"""Every path resolves relative to the file that wrote it, row by row (compose-spec
05-services.md, 14-include.md, 09-secrets.md; compose-go paths/resolve.go and its loader's
extends/include tests; issue 25 class 6)."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from holosc.core.model import Project
from tests.compose_ref import Err, check_errors, outcome, params

RESOLVE = "paths/resolve.go "
SPEC = "05-services.md "
INCLUDE = "14-include.md"


@dataclasses.dataclass(frozen=True)
class Row:
    source: str
    files: dict[str, str]
    expected: dict[str, Any] | Err  # facts of service `svc` and the project (see `paths`)


def paths(project: Project) -> dict[str, Any]:
    svc = project.service("svc")
    return {
        "mounts": [m.source for m in svc.binds],
        "image": svc.image.path,
        "dockerfile": svc.build.dockerfile if svc.build else None,
        "kernel": svc.vm.kernel,
        "initrd": svc.vm.initrd,
        "secrets": {s.name: s.file for s in project.secrets},
        "env": dict(svc.environment),
    }


def top(svc: str, more: str = "") -> str:
    return f"name: p\n{more}services:\n  svc: {svc}\n"


def inc(path: str = "sub/holos.yaml") -> str:
    return f"name: p\ninclude: [{path}]\n"


def ext(file: str, service: str = "base") -> str:
    return top(f"{{extends: {{service: {service}, file: {file}}}}}")


KERNEL = {"k/vmlinuz": "k", "k/initrd.img": "i"}
DOCKERFILE = "FROM debian:12\nRUN true\n"

ROWS = [
    # The main file's paths are relative to it.
    Row(
        RESOLVE + "volumes",
        {"holos.yaml": top("{image: debian:12, volumes: ['./data:/data', '.:/all', '../up:/up']}")},
        {"mounts": ["./data", ".", "../up"]},
    ),
    Row(
        RESOLVE + "env_file",
        {"holos.yaml": top("{image: debian:12, env_file: [e/a.env]}"), "e/a.env": "A=1\n"},
        {"env": {"A": "1"}},
    ),
    Row(
        RESOLVE + "secrets.*.file",
        {
            "holos.yaml": top("{image: debian:12, secrets: [s]}", "secrets: {s: {file: ./s/pw}}\n"),
            "s/pw": "x",
        },
        {"secrets": {"s": "./s/pw"}},
    ),
    # Included files: their own directory (issue 25 class 6).
    Row(
        INCLUDE + " volumes",
        {
            "holos.yaml": inc(),
            "sub/holos.yaml": "services:\n  svc: {image: debian:12, volumes: ['./data:/d', '../shared:/s', '/abs:/a']}\n",
        },
        {"mounts": ["./sub/data", "./shared", "/abs"]},
    ),
    Row(
        INCLUDE + " env_file string",
        {
            "holos.yaml": inc(),
            "sub/holos.yaml": "services:\n  svc: {image: debian:12, env_file: a.env}\n",
            "sub/a.env": "A=sub\n",
        },
        {"env": {"A": "sub"}},
    ),
    Row(
        INCLUDE + " env_file list",
        {
            "holos.yaml": inc(),
            "sub/holos.yaml": "services:\n  svc: {image: debian:12, env_file: [a.env, ../b.env]}\n",
            "sub/a.env": "A=sub\n",
            "b.env": "B=top\n",
        },
        {"env": {"A": "sub", "B": "top"}},
    ),
    Row(
        INCLUDE + " env_file long form",
        {
            "holos.yaml": inc(),
            "sub/holos.yaml": "services:\n  svc: {image: debian:12, env_file: [{path: a.env}]}\n",
            "sub/a.env": "A=sub\n",
        },
        {"env": {"A": "sub"}},
    ),
    Row(
        INCLUDE + " image path",
        {
            "holos.yaml": inc(),
            "sub/holos.yaml": "services:\n  svc: {image: ./disk.qcow2}\n",
            "sub/disk.qcow2": "",
        },
        {"image": "./sub/disk.qcow2"},
    ),
    Row(
        INCLUDE + " dockerfile",
        {
            "holos.yaml": inc(),
            "sub/holos.yaml": "services:\n  svc: {dockerfile: Dockerfile}\n",
            "sub/Dockerfile": DOCKERFILE,
        },
        {"dockerfile": "./sub/Dockerfile"},
    ),
    Row(
        INCLUDE + " kernel and initrd",
        {
            "holos.yaml": inc(),
            "sub/holos.yaml": "services:\n  svc: {image: debian:12, vm: {kernel: ../k/vmlinuz, initrd: ../k/initrd.img}}\n",
            **KERNEL,
        },
        {"kernel": "./k/vmlinuz", "initrd": "./k/initrd.img"},
    ),
    Row(
        INCLUDE + " secrets file",
        {
            "holos.yaml": inc(),
            "sub/holos.yaml": "services:\n  svc: {image: debian:12, secrets: [s]}\nsecrets: {s: {file: pw}}\n",
            "sub/pw": "x",
        },
        {"secrets": {"s": "./sub/pw"}},
    ),
    Row(
        INCLUDE + " extends file",
        {
            "holos.yaml": inc(),
            "sub/holos.yaml": "services:\n  svc: {extends: {service: base, file: lib/base.yaml}}\n",
            "sub/lib/base.yaml": "services:\n  base: {image: debian:12, volumes: ['./x:/x']}\n",
        },
        {"mounts": ["./sub/lib/x"]},
    ),
    Row(
        INCLUDE + " nested include",
        {
            "holos.yaml": inc("a/holos.yaml"),
            "a/holos.yaml": "include: [b/holos.yaml]\nservices: {}\n",
            "a/b/holos.yaml": "services:\n  svc: {image: debian:12, volumes: ['./x:/x'], env_file: [e.env]}\n",
            "a/b/e.env": "E=b\n",
        },
        {"mounts": ["./a/b/x"], "env": {"E": "b"}},
    ),
    Row(
        INCLUDE + " project_directory",
        {
            "holos.yaml": "name: p\ninclude: [{path: sub/holos.yaml, project_directory: other}]\n",
            "sub/holos.yaml": "services:\n  svc: {image: debian:12, volumes: ['./x:/x'], env_file: e.env}\n",
            "other/e.env": "E=other\n",
        },
        {"mounts": ["./other/x"], "env": {"E": "other"}},
    ),
    # Extended files: their own directory, at every level.
    Row(
        SPEC + "extends file, volumes",
        {
            "holos.yaml": ext("base/common.yaml"),
            "base/common.yaml": "services:\n  base: {image: debian:12, volumes: ['./shared:/s']}\n",
        },
        {"mounts": ["./base/shared"]},
    ),
    Row(
        SPEC + "extends file, env_file list",
        {
            "holos.yaml": ext("base/common.yaml"),
            "base/common.yaml": "services:\n  base: {image: debian:12, env_file: [common.env]}\n",
            "base/common.env": "C=1\n",
        },
        {"env": {"C": "1"}},
    ),
    Row(
        SPEC + "extends file, env_file string",
        {
            "holos.yaml": ext("base/common.yaml"),
            "base/common.yaml": "services:\n  base: {image: debian:12, env_file: common.env}\n",
            "base/common.env": "C=1\n",
        },
        {"env": {"C": "1"}},
    ),
    Row(
        SPEC + "extends file, dockerfile",
        {
            "holos.yaml": ext("base/common.yaml"),
            "base/common.yaml": "services:\n  base: {dockerfile: Dockerfile}\n",
            "base/Dockerfile": DOCKERFILE,
        },
        {"dockerfile": "./base/Dockerfile"},
    ),
    Row(
        SPEC + "extends file, image",
        {
            "holos.yaml": ext("base/common.yaml"),
            "base/common.yaml": "services:\n  base: {image: img/disk.qcow2}\n",
            "base/img/disk.qcow2": "",
        },
        {"image": "./base/img/disk.qcow2"},
    ),
    Row(
        SPEC + "extends file, kernel",
        {
            "holos.yaml": ext("base/common.yaml"),
            "base/common.yaml": "services:\n  base: {image: debian:12, vm: {kernel: ../k/vmlinuz}}\n",
            **KERNEL,
        },
        {"kernel": "./k/vmlinuz"},
    ),
    Row(
        SPEC + "extends file, two levels",
        {
            "holos.yaml": ext("a/a.yaml", "a"),
            "a/a.yaml": "services:\n  a: {extends: {service: b, file: b/b.yaml}, volumes: ['./mine:/m']}\n",
            "a/b/b.yaml": "services:\n  b: {image: debian:12, volumes: ['./deep:/d'], env_file: [b.env]}\n",
            "a/b/b.env": "B=1\n",
        },
        {"mounts": ["./a/b/deep", "./a/mine"], "env": {"B": "1"}},
    ),
    Row(
        SPEC + "extends file, merged env_file lists",
        {
            "holos.yaml": top(
                "{extends: {service: base, file: lib/base.yaml}, env_file: [mine.env]}"
            ),
            "lib/base.yaml": "services:\n  base: {image: debian:12, env_file: [base.env]}\n",
            "lib/base.env": "K=base\nB=1\n",
            "mine.env": "K=mine\n",
        },
        {"env": {"K": "mine", "B": "1"}},
    ),
    Row(
        SPEC + "extends in the file, paths stay",
        {
            "holos.yaml": "name: p\nservices:\n  base: {image: debian:12, volumes: ['./x:/x']}\n  svc: {extends: base}\n"
        },
        {"mounts": ["./x"]},
    ),
    Row(
        SPEC + "extends file missing env_file",
        {
            "holos.yaml": ext("base/common.yaml"),
            "base/common.yaml": "services:\n  base: {image: debian:12, env_file: [gone.env]}\n",
        },
        Err("cannot read env_file ./base/gone.env"),
    ),
]


@params(ROWS)
def test_paths(tmp_path: Path, row: Row) -> None:
    result = outcome(tmp_path, row.files, {})
    if isinstance(row.expected, Err):
        check_errors(result, row.expected)
        return
    assert not isinstance(result, Err), result.text
    found = paths(result)
    assert {k: found[k] for k in row.expected} == row.expected
