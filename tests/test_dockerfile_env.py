"""Dockerfile ENV as Docker reads it: keys validated, earlier values expanded, the base
image's variables (here: the guest's) left to the shell. Each build step runs under the
guest's /bin/sh (holos-bake); the first-boot script of the cluster export in bash."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from holosc.core.validate.checks import build_project
from holosc.core.validate.dockerfile import convert
from holosc.errors import HolosError
from holosc.load.files import HostFiles
from holosc.load.parse import load_text
from tests.conftest import require_tool

DOCKERFILE = r"""FROM debian:12
ENV PATH=/opt/bin:$PATH
ENV BASE=/srv APP="$BASE/app" LIT='$BASE' ESC=\$BASE
ENV DEF=${NOPE:-x$BASE} ALT=${BASE:+yes} NONE=${NOPE:+no} E2="a b" Q="it's \"q\""
ENV BASE=/opt NEXT=${BASE}/next
ENV LEGACY some value $BASE
RUN printf '%s\n' "$PATH" "$APP" "$LIT" "$ESC" "$DEF" "$ALT" "$NONE" "$E2" "$Q" "$NEXT" "$LEGACY"
"""
# What `docker build` gives for the same lines (Docker's documented expansion rules: a
# line's values expand with the variables as they were before that line), with a base
# image PATH of /usr/bin:/bin and no BASE.
EXPECTED = [
    "/opt/bin:/usr/bin:/bin",
    "/app",
    "$BASE",
    "$BASE",
    "x/srv",
    "yes",
    "",
    "a b",
    'it\'s "q"',
    "/srv/next",
    "some value /opt",
]


@pytest.mark.parametrize("form", ["build step", "first boot"])
def test_env_values_expand_as_in_docker(tmp_path: Path, form: str) -> None:
    converted = convert(DOCKERFILE, tmp_path, HostFiles())
    assert converted.findings == ()
    if form == "build step":  # as holos-bake runs it: sh -c SCRIPT, as root in the guest
        (step,) = converted.build.steps
        argv = [require_tool("dash"), "-c", step.script]
    else:
        script = tmp_path / "build.sh"
        script.write_text(converted.build.first_boot.script)
        argv = [require_tool("bash"), str(script)]
    result = subprocess.run(
        argv, capture_output=True, text=True, timeout=30, env={"PATH": "/usr/bin:/bin"}
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == EXPECTED


def test_env_key_cannot_become_shell(tmp_path: Path) -> None:
    marker = tmp_path / "p"
    converted = convert(f"FROM debian:12\nENV a;touch {marker};b=1\n", tmp_path, HostFiles())
    assert [f.severity for f in converted.findings] == ["error"]
    assert "is not a variable name" in converted.findings[0].message


def test_errors_show_dockerfile_text_escaped(tmp_path: Path) -> None:
    (tmp_path / "Dockerfile").write_text("FROM debian:12\nHEALTH\x1b[2J\x07CHECK none\n")
    doc = load_text("name: esc\nservices:\n  web: {dockerfile: Dockerfile}\n", directory=tmp_path)
    with pytest.raises(HolosError) as info:
        build_project(doc, HostFiles())
    assert [str(d) for d in info.value.diagnostics] == [
        "holos.yaml:3:21: error: services.web.dockerfile: Dockerfile:2: "
        "HEALTH\\x1b[2J\\x07CHECK none: HEALTH\\x1b[2J\\x07CHECK is not a Dockerfile "
        "instruction (hint: did you mean HEALTHCHECK?)"
    ]


@settings(max_examples=60, deadline=None)
@given(
    value=st.text(
        st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00\n\r"), max_size=40
    )
)
def test_any_env_value_reaches_a_run_step_as_written(value: str) -> None:
    """Hostile ENV text (quotes, `$(...)`, backquotes, `;`, globs) is a value, never shell:
    the step script holos-bake runs gives it back byte for byte under the guest's sh."""
    escaped = "".join("\\" + c if c in '"\\$' else c for c in value)
    dockerfile = f'FROM debian:12\nENV V="{escaped}"\nRUN printf %s "$V"\n'
    converted = convert(dockerfile, Path("/nonexistent"), HostFiles())
    assert converted.findings == ()
    (step,) = converted.build.steps
    result = subprocess.run(
        [require_tool("dash"), "-c", step.script],
        capture_output=True,
        timeout=30,
        env={"PATH": "/usr/bin:/bin"},
        cwd="/",
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.decode() == value
