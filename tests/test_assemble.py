"""include: and extends: — several files assembled into one project, compose 2.20 style:
each file's relative paths and .env belong to its own directory, merges follow compose's
rules, and every error points into the file and line its value came from."""

from __future__ import annotations

from pathlib import Path

import pytest

from holosc.core.model import Project
from holosc.core.validate.checks import build_project
from holosc.errors import HolosError
from holosc.load.assemble import load_project
from holosc.load.files import HostFiles


def write(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    return root / "holos.yaml"


def build(path: Path) -> Project:
    return build_project(load_project(path, environ={}), HostFiles()).project


def errors(path: Path) -> list[str]:
    with pytest.raises(HolosError) as info:
        build(path)
    return [str(d) for d in info.value.diagnostics if d.severity == "error"]


MAIN = """\
name: shop
include: [db/holos.yaml]
services:
  web:
    extends: {service: common, file: base/common.yaml}
    image: debian:12
    volumes: ["./site:/srv/site:ro"]
    depends_on: [db]
    cloud_init: {runcmd: [echo web]}
    healthcheck: {test: [CMD, "true"]}
  worker:
    extends: web
    vm: {memory_mb: 1024}
"""
DB = """\
services:
  db:
    image: ${DB_IMAGE}
    volumes: ["./initdb:/init:ro", "data:/var/lib/db"]
volumes:
  data: {size: 1G}
"""
COMMON = """\
services:
  common:
    image: ubuntu:noble
    vm: {vcpu: 2, memory_mb: 2048}
    volumes: ["./shared:/srv/shared:ro", "./default-site:/srv/site"]
    cloud_init: {packages: [nginx], runcmd: [echo common]}
    healthcheck: {test: [CMD, "false"], retries: 7}
"""


def test_include_and_extends_assemble_one_project(tmp_path: Path) -> None:
    main = write(
        tmp_path,
        {
            "holos.yaml": MAIN,
            "db/holos.yaml": DB,
            "db/.env": "DB_IMAGE=debian:12\n",
            "base/common.yaml": COMMON,
        },
    )
    project = build(main)
    db, web, worker = (project.service(n) for n in ("db", "web", "worker"))
    # The included file's .env and directory are its own.
    assert db.image.name == "debian"
    assert [(m.source, m.target) for m in db.mounts] == [
        ("./db/initdb", "/init"),
        ("data", "/var/lib/db"),
    ]
    assert [v.name for v in project.volumes] == ["data"]
    # extends: mappings merge (this side wins), lists append, a volume's target is its key,
    # healthcheck.test is replaced, not appended.
    assert web.image.name == "debian" and web.vm.vcpu == 2 and web.vm.memory_mb == 2048
    assert [(m.source, m.target, m.read_only) for m in web.mounts] == [
        ("./base/shared", "/srv/shared", True),
        ("./site", "/srv/site", True),
    ]
    assert web.cloud_init.packages == ("nginx",)
    assert web.cloud_init.runcmd == ("echo common", "echo web")
    assert web.healthcheck is not None and web.healthcheck.test == ("true",)
    assert web.healthcheck.retries == 7
    # A chain: worker extends web, which extends common in another file.
    assert worker.vm.memory_mb == 1024 and worker.vm.vcpu == 2
    assert worker.cloud_init.runcmd == ("echo common", "echo web")
    assert [d.service for d in worker.depends_on] == ["db"]


def test_errors_point_into_the_file_the_value_came_from(tmp_path: Path) -> None:
    main = write(
        tmp_path,
        {
            "holos.yaml": MAIN,
            "db/holos.yaml": DB.replace("${DB_IMAGE}", "debian:12").replace(
                "    volumes: [", "    vm: {memory_mb: lots}\n    volumes: ["
            ),
            "base/common.yaml": COMMON.replace("vcpu: 2", 'vcpu: "two"'),
        },
    )
    found = errors(main)
    not_an_integer = "must be an integer, not the string"
    assert f'base/common.yaml:4:16: error: services.web.vm.vcpu: {not_an_integer} "two"' in found
    assert f'base/common.yaml:4:16: error: services.worker.vm.vcpu: {not_an_integer} "two"' in found
    assert f'db/holos.yaml:4:21: error: services.db.vm.memory_mb: {not_an_integer} "lots"' in found


def test_a_name_defined_twice_merges_the_including_side_over(tmp_path: Path) -> None:
    """compose-go's include: a service both files define is merged, the including
    file's definition winning (the same file reached twice is then no conflict)."""
    main = write(
        tmp_path,
        {
            "holos.yaml": "name: p\ninclude: [a.yaml, b.yaml]\nservices:\n"
            "  db: {image: debian:12}\n",
            "a.yaml": "include: [common.yaml]\nservices:\n"
            "  db: {image: alpine:3.21, vm: {memory_mb: 1024}}\n",
            "b.yaml": "include: [common.yaml]\nservices: {}\n",
            "common.yaml": "services:\n  shared: {image: debian:12}\n",
        },
    )
    project = build(main)
    db = project.service("db")
    assert db.image.name == "debian" and db.vm.memory_mb == 1024
    assert [s.name for s in project.services] == ["db", "shared"]


def test_cycles_are_errors(tmp_path: Path) -> None:
    main = write(
        tmp_path,
        {
            "holos.yaml": "name: p\ninclude: [a.yaml]\nservices:\n"
            "  x: {extends: y, image: debian:12}\n  y: {extends: x}\n",
            "a.yaml": "include: [holos.yaml]\nservices: {}\n",
        },
    )
    found = errors(main)
    assert any("include cycle or too deep: holos.yaml -> a.yaml -> holos.yaml" in e for e in found)
    assert any("extends cycle: x -> y -> x" in e for e in found), found


def test_unknown_base_and_missing_file(tmp_path: Path) -> None:
    main = write(
        tmp_path,
        {
            "holos.yaml": "name: p\ninclude: [nope.yaml]\nservices:\n"
            "  x: {extends: ghost, image: debian:12}\n",
        },
    )
    found = errors(main)
    assert any(
        e.startswith("holos.yaml:2:11: error: include[0]: cannot include nope.yaml") for e in found
    ), found
    assert "holos.yaml:4:16: error: services.x.extends: extends unknown service 'ghost'" in found
