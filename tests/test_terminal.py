"""The one function that decides what reaches a terminal (holos_runtime.terminal), and
the paths that print text holosc did not write through it."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from holos_runtime.terminal import UNSAFE, terminal_safe

from tests.conftest import REPO


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        ("\x1b]0;owned\x07", "\\x1b]0;owned\\x07"),  # OSC: retitle
        ("\x1b]52;c;cm0gLXJmIH4=\x07", "\\x1b]52;c;cm0gLXJmIH4=\\x07"),  # OSC 52: clipboard
        ("\x1b[2J\x1b[H", "\\x1b[2J\\x1b[H"),  # clear screen, cursor home
        ("ok\rhidden", "ok\\rhidden"),  # a lone CR overwrites the line
        ("\x9b31m\x9d0;t\x9c\x90q\x85", "\\x9b31m\\x9d0;t\\x9c\\x90q\\x85"),  # C1 controls
        ("\x7f\x00\x08", "\\x7f\\x00\\x08"),  # DEL, NUL, backspace
        ("user\u202e\u2066txt.exe\u2069", "user\\u202e\\u2066txt.exe\\u2069"),  # bidi
        ("a\u2028b\u2029c", "a\\u2028b\\u2029c"),  # line and paragraph separators
        ("bad\udcff byte", "bad\\udcff byte"),  # undecodable byte (surrogateescape)
        ("boot\r\nok\tdone\n", "boot\nok\tdone\n"),  # CR LF is a line end; tab, LF stay
        ("café 日本 👩\u200d💻 naïve", "café 日本 👩\u200d💻 naïve"),  # text stays text
    ],
)
def test_terminal_safe_escapes_what_drives_or_deceives_a_terminal(text: str, shown: str) -> None:
    assert terminal_safe(text) == shown
    shown.encode("utf-8")  # printable on a UTF-8 terminal: no lone surrogate left


def test_one_line_text_cannot_forge_a_line() -> None:
    forged = "web\nholos.yaml:1:1: error: all good\tx\r\n"
    assert terminal_safe(forged, one_line=True) == ("web\\nholos.yaml:1:1: error: all good\\tx\\n")


# -- every print of a command ------------------------------------------------------------

HOSTILE = "\x1b]0;owned\x07\x1b[2J\x9b31m\u202e"


def run_cli(*args: str, cwd: Path | None = None, **env: str) -> tuple[int, str, str]:
    """`holosc ARGS` with its output as bytes (text mode would turn a raw CR into LF)."""
    done = subprocess.run(
        [sys.executable, "-m", "holosc", *args],
        cwd=cwd,
        env=dict(os.environ, COLUMNS="100", **env),
        capture_output=True,
        timeout=120,
        check=False,
    )
    return done.returncode, done.stdout.decode(), done.stderr.decode()


def assert_safe(*texts: str) -> None:
    for text in texts:
        found = UNSAFE.search(text.replace("\r\n", "\n"))
        assert found is None, f"raw {found[0]!r} printed: {text!r}"


def test_every_write_to_stdout_and_stderr_passes_terminal_safe() -> None:
    """What any code in the command's process prints (holosc, click, a helper) is
    escaped; holosc's own control sequences go past by name; a document is exact when
    piped. The paths below show that each kind of foreign text takes this way."""
    script = (
        "import sys\n"
        "from holosc.cli import streams\n"
        "streams.install(); streams.install()\n"
        f"print({HOSTILE!r}); print({HOSTILE!r}, file=sys.stderr)\n"
        f"sys.stderr.writelines([{HOSTILE!r}, '\\n'])\n"
        "streams.control('\\x1b[1;31m^\\x1b[0m\\n')\n"
        "streams.document('a: \\u202e\\n')\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, check=True)
    shown = terminal_safe(HOSTILE)
    assert done.stdout.decode() == f"{shown}\na: \u202e\n"
    assert done.stderr.decode() == f"{shown}\n{shown}\n\x1b[1;31m^\x1b[0m\n"


@pytest.fixture
def hostile_project(tmp_path: Path) -> Path:
    """A project whose image path holds escape sequences (YAML's \\e and \\a)."""
    (tmp_path / "holos.yaml").write_text(
        'name: demo\nservices:\n  web:\n    image: "./img\\e]0;owned\\a\\e[2J\\u202e.qcow2"\n'
    )
    return tmp_path


def test_config_images_and_warnings_quote_holos_yaml_escaped(hostile_project: Path) -> None:
    code, out, err = run_cli("config", "--images", cwd=hostile_project)
    assert code == 0, err
    assert out == "./img\\x1b]0;owned\\x07\\x1b[2J\\u202e.qcow2\n"
    assert "does not exist" in err  # the diagnostic quotes the value too
    assert_safe(out, err)


def test_a_diagnostic_snippet_shows_the_source_line_escaped(tmp_path: Path) -> None:
    """The caret display prints the line of holos.yaml itself, colour on (YAML's reader
    refuses raw C0 and C1 controls, not bidirectional ones)."""
    (tmp_path / "holos.yaml").write_text(
        "name: demo\nservices:\n  web:\n    image: ./x.qcow2\n"
        "    replicas: many # \u202eevil\u2066\n"
    )
    code, out, err = run_cli("--color", "always", "validate", cwd=tmp_path)
    assert code == 3 and "must be an integer" in err, err
    assert "replicas: many # \\u202eevil\\u2066" in err
    assert "\x1b[1;31m^\x1b[0m" in err  # holosc's own colour still works
    assert_safe(out, err.replace("\x1b[1;31m^\x1b[0m", ""))


def test_build_diff_of_a_planted_file_is_escaped(hostile_project: Path) -> None:
    assert run_cli("build", cwd=hostile_project)[0] == 0
    unit = hostile_project / "deploy" / "holos-demo-web@.service"
    unit.write_text(unit.read_text() + f"# {HOSTILE}\r\n")
    code, out, err = run_cli("build", "--diff", cwd=hostile_project)
    assert code == 1 and "\\x1b]0;owned\\x07" in out, out
    assert_safe(out, err)


def test_export_upload_note_is_escaped(hostile_project: Path, tmp_path: Path) -> None:
    code, out, err = run_cli("export", "kubevirt", "-o", str(tmp_path / "k"), cwd=hostile_project)
    assert code == 0, err
    assert "upload the image of web" in err
    assert_safe(out, err)


def test_import_warnings_with_c1_controls_are_escaped(tmp_path: Path) -> None:
    """XML 1.0 allows C1 controls as character references; the warning quotes them."""
    xml = tmp_path / "d.xml"
    xml.write_text(
        "<domain type='kvm'><name>db</name><memory unit='G'>1</memory><vcpu>1</vcpu>"
        "<devices><emulator>/opt/&#x9b;2J&#x9d;0;owned&#x9c;/qemu</emulator></devices>"
        "</domain>"
    )
    code, out, err = run_cli("import", "--xml", str(xml))
    assert code == 0, err
    assert 'custom emulator "/opt/\\x9b2J\\x9d0;owned\\x9c/qemu"' in err, err
    assert_safe(out, err)


def test_nothing_writes_past_the_wrapped_streams() -> None:
    """The wrapper holds only if no code writes to the file descriptors or the original
    streams itself; the interactive console is the one exception, on purpose."""
    bypass = re.compile(
        r"__std(out|err)__|std(out|err)\.(buffer|fileno)|os\.(write|fdopen)\([12]\b"
    )
    allowed = {"holosc/cli/guest.py"}  # `holosc console`: the guest's terminal, raw
    found = [
        f"{path.relative_to(REPO)}:{n}: {line.strip()}"
        for path in sorted((REPO / "holosc").rglob("*.py"))
        if str(path.relative_to(REPO)) not in allowed
        for n, line in enumerate(path.read_text().splitlines(), 1)
        if bypass.search(line)
    ]
    assert found == []
