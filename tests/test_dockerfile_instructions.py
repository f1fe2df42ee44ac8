"""Dockerfile instructions beyond RUN/COPY/ENV/WORKDIR, as Docker (BuildKit) runs them:
ARG and SHELL are run here under the real shells (each build step under dash, as
holos-bake runs it in the guest; the first-boot script of the cluster export under bash)
and both forms must print the same. ADD of a local file is COPY, ADD of a local archive
unpacks it as Docker does; what holosc does not do (ADD of a URL, heredocs) is an error,
never a silently different build. The error messages themselves are listed in
tests/cases/errors-dockerfile-instructions."""

from __future__ import annotations

import dataclasses
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


def _tar(tmp_path: Path, compression: str) -> bytes:
    """A tar of `app/hello.txt` and `app/bin/tool` (mode 0755), compressed or not."""
    root = tmp_path / "src"
    (root / "app" / "bin").mkdir(parents=True)
    (root / "app" / "hello.txt").write_text("hello from the archive\n")
    (root / "app" / "bin" / "tool").write_text("#!/bin/sh\n")
    (root / "app" / "bin" / "tool").chmod(0o755)
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode=f"w:{compression}") as tar:
        tar.add(root / "app", arcname="app")
    return buffer.getvalue()


@pytest.mark.parametrize("form", FORMS)
@pytest.mark.parametrize("compression", ["", "gz", "bz2", "xz"])
def test_add_unpacks_a_local_archive(tmp_path: Path, form: str, compression: str) -> None:
    """Docker's ADD unpacks a local tar, plain or compressed with gzip, bzip2 or xz, known
    by its content whatever its name; the steps run here under the real tar."""
    context = tmp_path / "ctx"
    context.mkdir()
    (context / "bundle.bin").write_bytes(_tar(tmp_path, compression))
    dest = tmp_path / "out"
    text = f"FROM debian:12\nADD bundle.bin {dest}/opt\nRUN cat {dest}/opt/app/hello.txt\n"
    converted = convert(text, context, HostFiles())
    assert converted.findings == ()
    if form == "first boot":  # the archive is staged in a file, base64: put it where asked
        staged = converted.build.first_boot.files[0]
        assert staged.permissions == "0600"
        local = tmp_path / "staged.b64"
        local.write_text(staged.content)
        script = converted.build.first_boot.script.replace(staged.path, str(local))
        converted = dataclasses.replace(
            converted,
            build=dataclasses.replace(
                converted.build,
                first_boot=dataclasses.replace(converted.build.first_boot, script=script),
            ),
        )
        assert run(converted, form, tmp_path) == ["hello from the archive"]
        assert not local.exists()
    else:
        add, cat = converted.build.steps
        unpacked = subprocess.run(
            [require_tool("dash"), "-c", add.script], input=add.input, capture_output=True
        )
        assert unpacked.returncode == 0, unpacked.stderr
        shown = subprocess.run([require_tool("dash"), "-c", cat.script], capture_output=True)
        assert shown.stdout == b"hello from the archive\n"
    assert (dest / "opt" / "app" / "bin" / "tool").stat().st_mode & 0o777 == 0o755


def test_add_copies_what_is_no_archive(tmp_path: Path) -> None:
    """Docker decides by the content: a text file named like an archive is copied, and
    a tar under --chmod is an error (its files keep the archive's modes)."""
    (tmp_path / "notes.tar.gz").write_text("not really gzip\n")
    (tmp_path / "real.tar").write_bytes(_tar(tmp_path, ""))
    add = convert("FROM debian:12\nADD notes.tar.gz /srv/\n", tmp_path, HostFiles())
    assert add.findings == ()
    ((step,),) = [add.build.steps]
    assert step.input == b"not really gzip\n" and "/srv/notes.tar.gz" in step.script
    chmod = convert("FROM debian:12\nADD --chmod=0755 real.tar /srv/\n", tmp_path, HostFiles())
    assert [f.message for f in chmod.findings] == [
        "ADD --chmod=0755 real.tar /srv/: --chmod and --chown are not supported when ADD "
        "unpacks an archive ('real.tar')"
    ]
    copy = convert("FROM debian:12\nCOPY real.tar /srv/\n", tmp_path, HostFiles())
    assert copy.findings == () and "/srv/real.tar" in copy.build.steps[0].script  # as is


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
