"""Profiles, row by row against compose's reference behaviour (compose-spec 15-profiles.md,
docker compose's --profile and COMPOSE_PROFILES; holosc's HOLOS_PROFILES). Rows run the
CLI's own loading (holosc.cli.common) in this process; the last tests run `holosc`."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from holosc.cli import common
from holosc.errors import HolosError
from tests.compose_ref import Err, params, write
from tests.conftest import run_holosc

SPEC = "15-profiles.md"
CLI = "docker compose --profile"


@dataclasses.dataclass(frozen=True)
class Row:
    source: str
    flags: list[str] | None  # --profile options (None: none given)
    expected: list[str] | Err  # the services that run, sorted
    env: dict[str, str] = dataclasses.field(default_factory=dict)
    dotenv: str | None = None
    project: str = ""


# compose-spec 15-profiles.md's illustrative example, as VMs.
EXAMPLE = """\
name: prof
services:
  foo: {image: debian:12}
  bar: {image: debian:12, profiles: [test]}
  baz: {image: debian:12, depends_on: [bar], profiles: [test]}
  zot: {image: debian:12, depends_on: [bar], profiles: [debug]}
"""
PLAIN = """\
name: prof
services:
  web: {image: debian:12}
  tools: {image: debian:12, profiles: [debug]}
  graphs: {image: 'alpine:3.21', profiles: [monitoring, debug]}
"""

ROWS = [
    Row(SPEC + " no profile enabled", None, ["foo"], project=EXAMPLE),
    Row(SPEC + " test enabled", ["test"], ["bar", "baz", "foo"], project=EXAMPLE),
    Row(
        SPEC + " debug enabled: zot needs bar",
        ["debug"],
        Err("'zot' depends on 'bar'"),
        project=EXAMPLE,
    ),
    Row(
        SPEC + " debug and test enabled",
        ["debug", "test"],
        ["bar", "baz", "foo", "zot"],
        project=EXAMPLE,
    ),
    Row(CLI + " '*'", ["*"], ["bar", "baz", "foo", "zot"], project=EXAMPLE),
    Row(
        CLI + " '*' via COMPOSE_PROFILES",
        None,
        ["bar", "baz", "foo", "zot"],
        env={"COMPOSE_PROFILES": "*"},
        project=EXAMPLE,
    ),
    Row(CLI + " repeated", ["debug", "debug"], ["graphs", "tools", "web"]),
    Row(CLI + " unknown profile", ["nothing"], ["web"]),
    Row(CLI + " one of several", ["monitoring"], ["graphs", "web"]),
    Row("HOLOS_PROFILES", None, ["graphs", "web"], env={"HOLOS_PROFILES": "monitoring"}),
    Row(
        "HOLOS_PROFILES comma-separated",
        None,
        ["graphs", "tools", "web"],
        env={"HOLOS_PROFILES": "debug, monitoring"},
    ),
    Row("HOLOS_PROFILES from .env", None, ["graphs", "web"], dotenv="HOLOS_PROFILES=monitoring\n"),
    Row(
        "COMPOSE_PROFILES environment",
        None,
        ["graphs", "tools", "web"],
        env={"COMPOSE_PROFILES": "debug"},
    ),
    Row(
        "COMPOSE_PROFILES from .env (issue 25 class 8)",
        None,
        ["graphs", "tools", "web"],
        dotenv="COMPOSE_PROFILES=debug\n",
    ),
    Row(
        "COMPOSE_PROFILES from .env, interpolated",
        None,
        ["graphs", "web"],
        dotenv="P=monitoring\nCOMPOSE_PROFILES=${P}\n",
    ),
    Row(
        "the environment over .env",
        None,
        ["graphs", "web"],
        env={"HOLOS_PROFILES": "monitoring"},
        dotenv="HOLOS_PROFILES=debug\n",
    ),
    Row(
        "HOLOS_PROFILES over COMPOSE_PROFILES",
        None,
        ["graphs", "web"],
        env={"HOLOS_PROFILES": "monitoring", "COMPOSE_PROFILES": "debug"},
    ),
    Row(
        "--profile over the environment",
        ["monitoring"],
        ["graphs", "web"],
        env={"COMPOSE_PROFILES": "debug"},
    ),
    Row(
        "an empty HOLOS_PROFILES",
        None,
        ["web"],
        env={"HOLOS_PROFILES": "", "COMPOSE_PROFILES": "debug"},
    ),
    Row(
        "a bad name in HOLOS_PROFILES",
        None,
        Err("'a b' is not a profile name"),
        env={"HOLOS_PROFILES": "a b"},
    ),
]


@params(ROWS)
def test_profiles(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, row: Row) -> None:
    files = {"holos.yaml": row.project or PLAIN}
    if row.dotenv is not None:
        files[".env"] = row.dotenv
    path = write(tmp_path, files)
    for variable in ("HOLOS_PROFILES", "COMPOSE_PROFILES"):
        monkeypatch.delenv(variable, raising=False)
    for key, value in row.env.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setattr(common, "profiles", common.profiles)  # restored after the test
    try:
        common.set_profiles(row.flags)
        names: list[str] | Err = sorted(s.name for s in common.load(path).project.services)
    except HolosError as exc:
        names = Err("\n".join(str(d) for d in exc.diagnostics) or exc.message)
    if isinstance(row.expected, Err):
        assert isinstance(names, Err) and row.expected.text in names.text, names
    else:
        assert names == row.expected


def test_the_command_line_takes_star_and_dotenv(tmp_path: Path) -> None:
    write(tmp_path, {"holos.yaml": PLAIN, ".env": "COMPOSE_PROFILES=monitoring\n"})
    clean = {"HOLOS_PROFILES": None, "COMPOSE_PROFILES": None}
    listed = run_holosc("config", "--services", cwd=tmp_path, env=clean)
    assert listed.stdout == "graphs\nweb\n", listed.stderr
    every = run_holosc("--profile", "*", "config", "--services", cwd=tmp_path, env=clean)
    assert every.stdout == "graphs\ntools\nweb\n", every.stderr
