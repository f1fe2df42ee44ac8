"""Dockerfile instructions beyond RUN/COPY/ENV/WORKDIR, as Docker (BuildKit) runs them:
ARG and SHELL are run here under the real shells (each build step under dash, as
holos-bake runs it in the guest; the first-boot script of the cluster export under bash)
and both forms must print the same. ADD of a local file is COPY; what holosc does not
do (ADD of an archive, heredocs) is an error, never a silently different build. The
error messages themselves are listed in tests/cases/errors-dockerfile-instructions."""

from __future__ import annotations

import io
import json
import subprocess
import tarfile
from pathlib import Path

import pytest

from holosc.core.validate.dockerfile import Converted, convert
from holosc.load.files import HostFiles
from tests.conftest import require_tool

FORMS = ["build step", "first boot"]


def run(converted: Converted, form: str, tmp_path: Path) -> list[str]:
    """What the RUN steps print, run as holos-bake runs them (each step: sh -c SCRIPT) or
    as the first-boot script."""
    env = {"PATH": "/usr/bin:/bin"}
    if form == "build step":
        out = []
        for step in converted.build.steps:
            argv = [require_tool("dash"), "-c", step.script]
            result = subprocess.run(argv, capture_output=True, text=True, timeout=30, env=env)
            assert result.returncode == 0, result.stderr
            out += result.stdout.splitlines()
        return out
    script = tmp_path / "build.sh"
    script.write_text(converted.build.first_boot.script)
    argv = [require_tool("bash"), str(script)]
    result = subprocess.run(argv, capture_output=True, text=True, timeout=30, env=env)
    assert result.returncode == 0, result.stderr
    return result.stdout.splitlines()


ARGS = """FROM debian:12
ARG V=1 W=${{V}}2
ENV E=$V-env
ARG NODEF
ARG SHADOW=arg
ENV SHADOW=env
ENV LATE=env
ARG LATE=arg
ARG Q="a b" P=$PATH:/x
WORKDIR {tmp}/w$V
RUN printf '%s\\n' "$V" "$W" "$E" "${{NODEF-unset}}" "$SHADOW" "$LATE" "$Q" "$P" "$(pwd)"
"""


@pytest.mark.parametrize("form", FORMS)
def test_arg_is_a_build_variable(tmp_path: Path, form: str) -> None:
    """Docker: an ARG is expanded in later lines and set for later RUNs; the last ENV or
    ARG of a name wins; an ARG without a value (no --build-arg here) stays unset."""
    converted = convert(ARGS.format(tmp=tmp_path), tmp_path, HostFiles())
    assert [(f.line, f.severity) for f in converted.findings] == [(4, "warning")]
    assert converted.findings[0].message == (
        "ARG NODEF has no default and holosc has no --build-arg: NODEF is unset"
    )
    assert run(converted, form, tmp_path) == [
        "1",
        "12",
        "1-env",
        "unset",
        "env",
        "arg",
        "a b",
        "/usr/bin:/bin:/x",
        f"{tmp_path}/w1",
    ]


def test_arg_is_not_kept_in_the_image(tmp_path: Path) -> None:
    """The seal writes the ENV names with the values the seal's exports give them: ARGs
    are not among them, and an ENV shadowed by a later ARG keeps its ENV value."""
    build = convert(ARGS.format(tmp=tmp_path), tmp_path, HostFiles()).build
    assert build.environment == ("E", "SHADOW", "LATE")
    show = 'printf "%s\\n" "${V-unset}" "${Q-unset}" "$E" "$SHADOW" "$LATE"'
    result = subprocess.run(
        [require_tool("dash"), "-c", build.exports + show],
        capture_output=True,
        text=True,
        timeout=30,
        env={"PATH": "/usr/bin:/bin"},
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == ["unset", "unset", "1-env", "env", "env"]


@pytest.mark.parametrize("form", FORMS)
def test_shell_runs_later_shell_form_runs(tmp_path: Path, form: str) -> None:
    """SHELL ["exe", "param"...]: a later shell-form RUN runs as exe param... "command"
    (the command one word, as written); the exec form ignores SHELL."""
    bash = require_tool("bash")
    recorder = [bash, "-c", 'printf \'[%s]\' "$0" "$@"; echo', "zero", "one"]
    text = (
        "FROM debian:12\n"
        f"SHELL {json.dumps(recorder)}\n"
        'RUN echo "it\'s $HOME" | cat\n'
        'RUN ["printf", "%s\\n", "exec form: $HOME"]\n'
        f'SHELL ["{bash}", "-o", "pipefail", "-c"]\n'
        "RUN false | true && echo no pipefail || echo pipefail\n"
    )
    converted = convert(text, tmp_path, HostFiles())
    assert converted.findings == ()
    assert run(converted, form, tmp_path) == [
        '[zero][one][echo "it\'s $HOME" | cat]',
        "exec form: $HOME",
        "pipefail",
    ]


def test_add_of_a_local_file_is_copy(tmp_path: Path) -> None:
    (tmp_path / "app.txt").write_text("hello\n")
    line = "{} --chmod=0755 --chown=1000:1000 app.txt /srv/\n"
    add = convert("FROM debian:12\n" + line.format("ADD"), tmp_path, HostFiles())
    copy = convert("FROM debian:12\n" + line.format("COPY"), tmp_path, HostFiles())
    assert add.findings == copy.findings == ()
    ((a,), (c,)) = add.build.steps, copy.build.steps
    assert (a.instruction, c.instruction) == (line.format("ADD")[:-1], line.format("COPY")[:-1])
    assert (a.line, a.script, a.input) == (c.line, c.script, c.input)
    assert add.build.first_boot == copy.build.first_boot


def test_add_refuses_a_tar_whatever_its_name(tmp_path: Path) -> None:
    """Docker extracts a local tar (it looks at the content); holosc would copy it."""
    data = tmp_path / "app.txt"
    data.write_text("hello\n")
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        tar.add(data, arcname="app.txt")
    (tmp_path / "bundle.bin").write_bytes(buffer.getvalue())
    add = convert("FROM debian:12\nADD bundle.bin /srv/\n", tmp_path, HostFiles())
    assert [(f.line, f.severity, f.message) for f in add.findings] == [
        (
            2,
            "error",
            "ADD bundle.bin /srv/: source 'bundle.bin' is an archive, which ADD would "
            "extract; holosc does not",
        )
    ]
    copy = convert("FROM debian:12\nCOPY bundle.bin /srv/\n", tmp_path, HostFiles())
    assert copy.findings == ()


SKIPPED = """FROM debian:12
CMD ["/srv/app"]
ENTRYPOINT ["/srv/app"]
EXPOSE 80
HEALTHCHECK NONE
LABEL org.example.team=web
MAINTAINER someone
onbuild RUN <<EOF
apt-get update
EOF
STOPSIGNAL SIGTERM
VOLUME /data
"""


def test_container_only_instructions_are_skipped_with_a_hint(tmp_path: Path) -> None:
    converted = convert(SKIPPED, tmp_path, HostFiles())
    assert [(f.line, f.severity, f.message) for f in converted.findings] == [
        (2, "warning", "CMD is skipped"),
        (3, "warning", "ENTRYPOINT is skipped"),
        (4, "warning", "EXPOSE is skipped"),
        (5, "warning", "HEALTHCHECK is skipped"),
        (6, "warning", "LABEL is skipped"),
        (7, "warning", "MAINTAINER is skipped"),
        (8, "warning", "ONBUILD is skipped"),
        (11, "warning", "STOPSIGNAL is skipped"),
        (12, "warning", "VOLUME is skipped"),
    ]
    assert all(f.hint for f in converted.findings)
    assert converted.build.steps == ()


def test_heredoc_body_is_not_read_as_instructions(tmp_path: Path) -> None:
    """An unterminated here-document runs to the end of the file (BuildKit's error too);
    a quoted `<<` is no here-document."""
    text = 'FROM debian:12\nRUN echo "<<EOF"\nRUN cat <<EOF\nRUNN x\nUSER app\n'
    converted = convert(text, tmp_path, HostFiles())
    assert [(f.line, f.severity) for f in converted.findings] == [(3, "error")]
    assert [s.instruction for s in converted.build.steps] == ['RUN echo "<<EOF"']


def test_byte_order_mark_is_skipped(tmp_path: Path) -> None:
    """Docker skips a UTF-8 byte order mark; it is not part of the first instruction."""
    converted = convert("\ufeffFROM debian:12\n", tmp_path, HostFiles())
    assert (converted.base_image, converted.findings) == ("debian:12", ())
