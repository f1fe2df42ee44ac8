"""The command line imports only what the command at hand uses (issue #17: an instant CLI).

Each check runs `holosc` in a fresh interpreter and reads `sys.modules` at exit; no timing
is asserted here (bench/startup.py prints those).
"""

from __future__ import annotations

import inspect
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from holosc import cli
from tests.conftest import EXAMPLES

HEAVY = ("jsonschema", "jinja2", "pycdlib", "qemu", "pydantic")

PROBE = """
import io, json, sys, contextlib
sys.argv = ["holosc", *json.loads(sys.argv[1])]
from holosc.cli import main
out = io.StringIO()
try:
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(io.StringIO()):
        main()
except SystemExit as exc:
    code = exc.code
print(json.dumps({"code": code, "modules": sorted(sys.modules), "out": out.getvalue()}))
"""


def imported(*args: str, env: dict[str, str] | None = None) -> tuple[int, set[str], str]:
    result = subprocess.run(
        [sys.executable, "-c", PROBE, json.dumps(args)],
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        timeout=120,
        check=True,
    )
    data = json.loads(result.stdout)
    return data["code"], {m.split(".")[0] for m in data["modules"]}, data["out"]


def test_help_imports_no_heavy_module() -> None:
    code, modules, out = imported("--help")
    assert code == 0 and "validate" in out and "ps" in out
    assert not modules & set(HEAVY), modules & set(HEAVY)
    assert "yaml" not in modules


@pytest.mark.parametrize("command", ["version", *cli.COMMANDS])
def test_each_commands_help_imports_no_heavy_module(command: str) -> None:
    """Every command, new ones included, is registered lazily: its own --help (and
    `version`) loads no validator, template engine, ISO writer or QMP client."""
    code, modules, out = imported(command, *([] if command == "version" else ["--help"]))
    assert code == 0 and out
    assert not modules & set(HEAVY), (command, modules & set(HEAVY))


def test_ps_imports_no_compiler(tmp_path: Path) -> None:
    """ps with nothing installed, against a systemctl stub that says the manager runs."""
    stub = tmp_path / "systemctl"
    stub.write_text('#!/bin/sh\n[ "$1" = is-system-running ] && echo running\nexit 0\n')
    stub.chmod(0o755)
    env = {"HOLOSC_SYSTEMCTL": str(stub), "HOLOSC_CONFIG_DIR": str(tmp_path / "none")}
    code, modules, _ = imported("ps", env=env)
    assert code == 0
    assert not modules & {*HEAVY, "yaml"}, modules & {*HEAVY, "yaml"}


@pytest.mark.parametrize("example", ["three-tier", "volumes"])
def test_validate_of_a_valid_file_needs_no_renderer(example: str) -> None:
    code, modules, out = imported("validate", "-f", str(EXAMPLES / example / "holos.yaml"))
    assert code == 0 and "project:" in out
    assert not modules & set(HEAVY), modules & set(HEAVY)


def test_summaries_are_the_docstrings_first_sentences() -> None:
    """`holosc --help` lists COMMANDS' summaries: they must say what each command's own
    help says (its docstring's first sentence)."""
    for name, spec in cli.COMMANDS.items():
        command = cli.load_command(name)
        words = inspect.cleandoc(command.help or "").split("\n\n")[0].split()
        end = next((i for i, w in enumerate(words) if w.endswith(".")), len(words) - 1)
        assert spec.summary == " ".join(words[: end + 1]), name
