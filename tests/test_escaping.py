"""Hostile values never break out of the format they are written into.

Each escaping function is checked against the real consumer where one can run here:
bash for shell words, QEMU for option strings, PyYAML (cloud-init's loader) for YAML.
systemd's Exec= quoting is checked against a parser written from systemd.service(5)
here and, in tests/systemd/, against a real systemd.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from holosc.core.render.escape import (
    ShellVar,
    Specifier,
    exec_line,
    qemu_value,
    qemu_value_at_run_time,
    shell_command,
    shell_word,
    ssh_config_path,
    unit_value,
    yaml_document,
)
from tests.conftest import require_tool

# Any text but NUL, which no argv, file or YAML scalar can hold.
hostile = st.text(
    st.characters(blacklist_categories=("Cs",), blacklist_characters="\0"), max_size=40
)
nasty = st.sampled_from(
    [
        "",
        " ",
        "'",
        '"',
        "\\",
        "$HOME",
        "${x}",
        "%i",
        "%%",
        ";",
        "&&",
        "\n",
        "a,b",
        ",,",
        "-x",
        "`id`",
        "$(id)",
        "#",
        "*",
        "~",
        "\t",
    ]
)
words = st.one_of(hostile, nasty)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.lists(words, min_size=1, max_size=6), min_size=1, max_size=10))
def test_shell_words_survive_bash(argvs: list[list[str]]) -> None:
    bash = require_tool("bash")
    # Each argv prints its word count, then its words, NUL-separated.
    script = "".join(
        "set -- " + " ".join(shell_word(w) for w in argv) + '; printf \'%s\\0\' "$#" "$@"\n'
        for argv in argvs
    )
    fields = subprocess.run([bash, "-c", script], capture_output=True, check=True).stdout.split(
        b"\0"
    )[:-1]
    parsed = []
    while fields:
        count = int(fields.pop(0))
        parsed.append(fields[:count])
        del fields[:count]
    assert parsed == [[w.encode() for w in argv] for argv in argvs]


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(words, min_size=1, max_size=6))
def test_shell_command_is_the_argv_a_remote_shell_runs(argv: list[str]) -> None:
    """What sshd does with ssh's remote command: `$SHELL -c LINE` (sh, not bash here)."""
    sh = require_tool("sh")
    printed = subprocess.run(
        [sh, "-c", shell_command(["printf", "%s\\0", *argv])], capture_output=True, timeout=30
    )
    assert printed.returncode == 0, printed.stderr
    assert printed.stdout.decode().split("\0")[:-1] == argv
    # A first word starting with "-" is a command the shell looks up, not its option.
    dashed = subprocess.run([sh, "-c", shell_command(["-x", *argv])], capture_output=True)
    assert dashed.returncode == 127, dashed.stderr


@given(words, words)
def test_shell_vars_expand_in_place(before: str, after: str) -> None:
    word = shell_word([before, ShellVar("value"), after])
    out = subprocess.run(
        ["bash", "-c", f"value='a b*'; printf '%s' {word}"], capture_output=True, check=True
    ).stdout.decode()
    assert out == before + "a b*" + after


def _unquote_exec(line: str) -> list[str]:
    """Split an Exec= line as systemd.service(5) describes (quotes, C escapes, $$, %%)."""
    words, i = [], 0
    escapes = {"n": "\n", "t": "\t", "r": "\r", "\\": "\\", '"': '"', "'": "'"}
    while i < len(line):
        if line[i] == " ":
            i += 1
            continue
        word, quote = "", None
        while i < len(line) and (quote or line[i] != " "):
            c = line[i]
            if c == "\\":
                nxt = line[i + 1]
                if nxt == "x":
                    word += chr(int(line[i + 2 : i + 4], 16))
                    i += 4
                    continue
                word += escapes[nxt]
                i += 2
                continue
            if quote and c == quote:
                quote = None
            elif not quote and c in "\"'":
                quote = c
            else:
                word += c
            i += 1
        words.append(word.replace("$$", "\0").replace("%%", "%").replace("\0", "$"))
    return words


@given(st.lists(words, min_size=1, max_size=8))
def test_exec_line_round_trips(argv: list[str]) -> None:
    line = exec_line(["/bin/echo", *argv])
    assert "\n" not in line
    assert _unquote_exec(line) == ["/bin/echo", *argv]


def test_exec_line_keeps_intended_specifiers() -> None:
    assert exec_line([Specifier("%t/holos/x-%i.sock"), "100%"]) == "%t/holos/x-%i.sock 100%%"


@given(hostile)
def test_unit_value_is_one_literal_line(value: str) -> None:
    try:
        text = unit_value(value)
    except ValueError:
        assert any((ord(c) < 32 and c != "\t") or ord(c) == 127 for c in value) or value.endswith(
            "\\"
        )
        return
    assert "\n" not in text and text.replace("%%", "").count("%") == 0


@given(st.dictionaries(hostile, st.one_of(hostile, st.lists(hostile, max_size=3)), max_size=5))
def test_yaml_documents_load_back(data: dict[str, object]) -> None:
    assert yaml.safe_load(yaml_document(data)) == (data or None) or data == {}


def _qmp_query_name(qmp: Path) -> str:
    with socket.socket(socket.AF_UNIX) as sock:
        sock.settimeout(20)
        for _ in range(200):
            try:
                sock.connect(str(qmp))
                break
            except OSError:
                time.sleep(0.05)
        stream = sock.makefile("rwb")
        stream.readline()
        for cmd in ("qmp_capabilities", "query-name", "quit"):
            stream.write(json.dumps({"execute": cmd}).encode() + b"\n")
            stream.flush()
            reply = json.loads(stream.readline())
            while "event" in reply:
                reply = json.loads(stream.readline())
            if cmd == "query-name":
                return str(reply["return"].get("name"))
    raise AssertionError("no reply")


printable = st.text(st.characters(min_codepoint=32, max_codepoint=126), min_size=1, max_size=30)


@settings(max_examples=15, deadline=None)
@given(printable)
def test_qemu_option_values_survive_real_qemu(value: str) -> None:
    """QEMU parses `-name guest=<escaped>` and reports the name back over QMP."""
    qemu = require_tool("qemu-system-x86_64")
    with tempfile.TemporaryDirectory() as tmp:
        qmp = Path(tmp) / "q.sock"
        proc = subprocess.Popen(
            [
                qemu,
                "-S",
                "-nodefaults",
                "-display",
                "none",
                "-machine",
                "none",
                "-name",
                f"guest={qemu_value(value)},debug-threads=off",
                "-qmp",
                f"unix:{qemu_value(str(qmp))},server=on,wait=off",
            ],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        try:
            assert _qmp_query_name(qmp) == value
        finally:
            proc.kill()
            proc.wait()
    assert os.path.exists(tmp) is False


@settings(max_examples=25, deadline=None)
@given(printable)
def test_qemu_values_doubled_at_run_time_match_the_compiled_ones(value: str) -> None:
    """The launch script's `<var>_q=${var//,/,,}` gives what qemu_value gives."""
    script = f'dir={shell_word(value)}\n{qemu_value_at_run_time("dir")}\nprintf %s "$dir_q"'
    out = subprocess.run(["bash", "-c", script], capture_output=True, text=True, timeout=30)
    assert out.stdout == qemu_value(value)


SSH_PATHS = [
    "/plain/path",
    "/with space/key",
    "/100%d/%%/%h",
    "/quote\"s and 'single'/x",
    "/back\\slash\\",
    "/#not a comment",
    "/tab\there/$HOME/~",
    "/ünï/\uff43\uff4f\uff44\uff45",
]


def test_ssh_config_paths_read_back_by_ssh(tmp_path: Path) -> None:
    """`ssh -G` prints UserKnownHostsFile as ssh resolved it (unquoted, `%` expanded):
    each path comes back exactly."""
    lines = [f"  UserKnownHostsFile {ssh_config_path(p)}" for p in SSH_PATHS]
    for i, line in enumerate(lines):
        (tmp_path / f"c{i}").write_text(f"Host x\n{line}\n")
        shown = subprocess.run(
            ["ssh", "-G", "-F", str(tmp_path / f"c{i}"), "x"],
            capture_output=True, text=True, timeout=30, stdin=subprocess.DEVNULL,
        )  # fmt: skip
        assert shown.returncode == 0, shown.stderr
        found = [s for s in shown.stdout.splitlines() if s.startswith("userknownhostsfile ")]
        assert found == [f"userknownhostsfile {SSH_PATHS[i]}"], (line, found)


def test_ssh_config_paths_refuse_what_ssh_cannot_read() -> None:
    for bad in ("relative", "~/key", "/a${HOME}", "/line\nbreak", "/nul\0"):
        with pytest.raises(ValueError, match="ssh_config cannot carry"):
            ssh_config_path(bad)
