"""The `holosc` command line as people use it: build, --check, --diff, validate, config,
schema; atomic and minimal writes; errors with positions and documented exit codes."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from holosc.cli.common import terminal_safe
from holosc.errors import ExitCode, RuntimeCommandError
from tests.conftest import EXAMPLES, REPO, require_tool, run_holosc


def holosc(
    *args: str, cwd: Path | None = None, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return run_holosc(*args, cwd=cwd, env=env)


@pytest.fixture
def project(tmp_path: Path) -> Path:
    shutil.copytree(EXAMPLES / "three-tier", tmp_path / "p")
    return tmp_path / "p"


def test_build_writes_then_leaves_unchanged_files_alone(project: Path) -> None:
    first = holosc("build", cwd=project)
    assert first.returncode == 0, first.stderr
    out = project / "deploy"
    unit = out / "holos-shop-db@.service"
    os.utime(unit, (1, 1))
    again = holosc("build", cwd=project)
    assert again.returncode == 0 and "0 written, 0 removed" in again.stderr
    assert unit.stat().st_mtime == 1
    assert (out / "shop" / "web-1" / "launch.sh").stat().st_mode & 0o777 == 0o755
    assert not list(out.rglob("id_ed25519")), "no private key in the output"
    lock = json.loads((out / "holos.lock.json").read_text())
    digest = hashlib.sha256((project / "holos.yaml").read_bytes()).hexdigest()
    assert lock["sources"] == {"holos.yaml": digest}  # hashed as read, not read again


def test_check_and_diff_report_drift(project: Path) -> None:
    assert holosc("build", cwd=project).returncode == 0
    assert holosc("build", "--check", cwd=project).returncode == 0
    text = (
        (project / "holos.yaml")
        .read_text()
        .replace("stop_grace_period: 60s", "stop_grace_period: 90s")
    )
    (project / "holos.yaml").write_text(text)
    check = holosc("build", "--check", cwd=project)
    assert check.returncode == 1
    assert "would write holos-shop-db@.service" in check.stderr
    diff = holosc("build", "--diff", cwd=project)
    assert diff.returncode == 1
    assert "\n-TimeoutStopSec=75\n" in diff.stdout
    assert "\n+TimeoutStopSec=105\n" in diff.stdout
    assert "+++ b/holos-shop-db@.service" in diff.stdout


def test_failed_build_leaves_previous_output_untouched(project: Path) -> None:
    assert holosc("build", cwd=project).returncode == 0
    out = project / "deploy"
    before = {p: p.read_bytes() for p in out.rglob("*") if p.is_file()}
    (project / "holos.yaml").write_text(
        (project / "holos.yaml").read_text().replace("replicas: 2", "replicas: many")
    )
    result = holosc("build", cwd=project)
    assert result.returncode == 3
    assert (
        'holos.yaml:48:15: error: services.web.replicas: must be an integer, not the string "many"'
        in result.stderr
    )
    assert "Traceback" not in result.stderr
    assert {p: p.read_bytes() for p in out.rglob("*") if p.is_file()} == before


def test_stale_files_removed_but_foreign_files_kept(project: Path) -> None:
    assert holosc("build", cwd=project).returncode == 0
    out = project / "deploy"
    (out / "README.md").write_text("mine\n")
    (out / "shop" / "notes.txt").write_text("mine too\n")
    text = (project / "holos.yaml").read_text().replace("replicas: 2", "replicas: 1")
    (project / "holos.yaml").write_text(text)
    assert holosc("build", cwd=project).returncode == 0
    assert not (out / "shop" / "web-1").exists()
    assert (out / "shop" / "web-0" / "launch.sh").exists()
    assert (out / "README.md").read_text() == "mine\n"
    assert (out / "shop" / "notes.txt").exists()


def test_unwritable_output_is_an_error_not_a_traceback(project: Path, tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    result = holosc("build", "-o", str(blocker / "sub"), cwd=project)
    assert result.returncode == 4, result.stderr
    assert "Traceback" not in result.stderr and "cannot write" in result.stderr


def test_validate_reports_every_error_sorted(tmp_path: Path) -> None:
    (tmp_path / "holos.yaml").write_text(
        "name: x\nservices:\n  web:\n    image: nope\n    ports: ['99999:80']\n"
        "    volumes: [data:/d]\n"
    )
    result = holosc("validate", cwd=tmp_path)
    assert result.returncode == 3
    lines = [line for line in result.stderr.splitlines() if ": error: " in line]
    assert [line.split(": error:")[0] for line in lines] == [
        "holos.yaml:4:12",
        "holos.yaml:5:13",
        "holos.yaml:6:15",
    ]
    assert "holosc: 3 errors" in result.stderr


def test_validate_summary(project: Path) -> None:
    result = holosc("validate", cwd=project)
    assert result.returncode == 0, result.stderr
    assert "order: db api web" in result.stdout
    assert "web-1" in result.stdout and "8081->80" in result.stdout


def test_missing_compose_file(tmp_path: Path) -> None:
    result = holosc("validate", cwd=tmp_path)
    assert result.returncode == 3
    assert "no holos.yaml or holos.yml" in result.stderr


def test_config_prints_resolved_model(project: Path) -> None:
    result = holosc("config", "--format", "json", cwd=project)
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    web = next(s for s in data["services"] if s["name"] == "web")
    assert web["replicas"] == 2 and web["stop_grace_ms"] == 30000
    api = next(s for s in data["services"] if s["name"] == "api")
    assert api["vm"]["vcpu"] == 2 and api["vm"]["memory_mb"] == 1024  # merge key applied
    as_yaml = yaml.safe_load(holosc("config", cwd=project).stdout)
    assert as_yaml == data
    assert holosc("config", "--services", cwd=project).stdout.split() == ["db", "api", "web"]


def test_schema_is_valid_draft_2020_12_and_accepts_examples() -> None:
    result = holosc("schema")
    schema = json.loads(result.stdout)
    jsonschema.Draft202012Validator.check_schema(schema)
    for example in EXAMPLES.glob("*/holos.yaml"):
        jsonschema.Draft202012Validator(schema).validate(yaml.safe_load(example.read_text()))


def test_help_documents_exit_codes() -> None:
    result = holosc("--help")
    assert result.returncode == 0
    assert "Exit codes" in result.stdout
    for command in ("build", "validate", "config", "schema"):
        assert command in result.stdout


def _commands() -> list[tuple[str, Any]]:
    """Every command of `holosc`, subcommands of groups (export kubevirt) included."""
    import typer.main

    from holosc.cli import app

    found: list[tuple[str, Any]] = []

    def walk(command: Any, name: str) -> None:
        found.append((name, command))
        for sub, child in sorted(getattr(command, "commands", {}).items()):
            walk(child, f"{name} {sub}")

    walk(typer.main.get_command(app), "holosc")
    return found


def test_no_command_binds_an_option_string_twice() -> None:
    """`logs -f` once meant both --follow and --file; click silently takes the last one."""
    checked = 0
    for name, command in _commands():
        seen: dict[str, str] = {}
        for param in command.params:
            for opt in (*param.opts, *param.secondary_opts):
                if not opt.startswith("-"):
                    continue
                assert opt not in seen, f"{name}: {opt} is {seen[opt]} and {param.name}"
                seen[opt] = str(param.name)
        checked += 1
    assert checked >= 20


# Where compose (or kubectl, for export kubevirt) gives an option string another meaning,
# holosc follows it.
CONVENTIONS = {
    ("holosc logs", "-f"): "follow",
    ("holosc export kubevirt", "-n"): "namespace",
}


def test_shared_options_mean_one_thing_in_every_command() -> None:
    """--file/-f, --project/-p, --user, --system ... bind one parameter everywhere, and the
    scope and file options are the ones defined once (same help), except the conventions
    above."""
    shared = {"--file", "-f", "--project", "-p", "--user", "--system", "--output", "-o"}
    shared |= {"--strict", "--json", "--quiet", "-q", "--ssh-key", "--dry-run"}
    same_help = {"--file", "--user", "--system", "--ssh-key"}
    meaning: dict[str, tuple[str, str, str | None]] = {}
    uses = 0
    for name, command in _commands():
        for param in command.params:
            for opt in {*param.opts, *param.secondary_opts} & shared:
                if (name, opt) in CONVENTIONS:
                    assert CONVENTIONS[name, opt] == param.name
                    continue
                help_text = getattr(param, "help", None)
                first = meaning.setdefault(opt, (name, str(param.name), help_text))
                assert first[1] == param.name, f"{opt}: {first[:2]} but {name}: {param.name}"
                if opt in same_help:
                    assert first[2] == help_text, f"{opt}: help of {first[0]} differs in {name}"
                uses += 1
    assert uses > 40


def test_exit_codes_have_one_table() -> None:
    """The enum is the source; `--help` and the README show exactly its table."""
    help_text = " ".join(holosc("--help").stdout.split())
    assert f"Exit codes: {ExitCode.table()}." in help_text
    readme = (REPO / "README.md").read_text()
    section = readme.split("## Exit codes\n", 1)[1].split("\n## ", 1)[0]
    assert " ".join(section.split()) == ExitCode.table()


def test_a_bug_exits_70_and_ctrl_c_exits_130(monkeypatch: pytest.MonkeyPatch) -> None:
    """In-process: no command can be made to crash or be interrupted on purpose, so the
    app is replaced by one that does; what is tested is main()'s mapping."""
    import holosc.cli as cli

    for raised, code in ((RuntimeError("bug"), ExitCode.INTERNAL), (KeyboardInterrupt(), 130)):

        def app(exc: BaseException = raised) -> None:
            raise exc

        monkeypatch.setattr(cli, "app", app)
        with pytest.raises(SystemExit) as exited:
            cli.main()
        assert exited.value.code == code


def test_missing_ssh_keygen_or_journalctl_is_a_runtime_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import typer

    from holosc.cli import common
    from holosc.host import keys

    monkeypatch.setenv("PATH", str(tmp_path))  # neither ssh-keygen nor journalctl there
    with pytest.raises(RuntimeCommandError) as raised:
        keys.ensure_key(tmp_path / "key", "demo")
    assert raised.value.exit_code == ExitCode.RUNTIME == 5
    with pytest.raises(typer.Exit) as exited:
        common.replace_process(["journalctl", "-n", "1"], "systemd")
    assert exited.value.exit_code == ExitCode.RUNTIME


def test_logs_dash_f_follows() -> None:
    text = holosc("logs", "--help").stdout
    assert "-f, --follow" in text and "-f, --file" not in text


def _stderr_on_a_terminal(project: Path, *args: str, **env: str) -> str:
    """Run holosc with stderr on a real pseudo-terminal and return what it printed there."""
    import pty

    leader, follower = pty.openpty()
    inherited = {k: v for k, v in os.environ.items() if k != "NO_COLOR"}
    environ = inherited | env
    proc = subprocess.run(
        [sys.executable, "-m", "holosc", *args],
        cwd=project, env=environ, stdout=subprocess.DEVNULL, stderr=follower, timeout=120,
    )  # fmt: skip
    os.close(follower)
    chunks = []
    with contextlib.suppress(OSError):  # EIO once the terminal is drained
        while data := os.read(leader, 65536):
            chunks.append(data)
    os.close(leader)
    assert proc.returncode == 3
    return b"".join(chunks).decode().replace("\r\n", "\n")


def test_errors_show_the_source_line_with_a_caret_on_a_terminal(project: Path) -> None:
    text = (project / "holos.yaml").read_text().replace("replicas: 2", 'replicas: "2"')
    (project / "holos.yaml").write_text(text)
    shown = _stderr_on_a_terminal(project, "validate")
    first = (
        'holos.yaml:48:15: error: services.web.replicas: must be an integer, not the string "2"'
        " (hint: drop the quotes)\n"
    )
    assert shown.startswith(first), shown
    assert '48 |     replicas: "2"\n   |               \x1b[1;31m^\x1b[0m\n' in shown
    plain = _stderr_on_a_terminal(project, "validate", NO_COLOR="1")
    assert '48 |     replicas: "2"\n   |               ^\n' in plain and "\x1b" not in plain
    piped = holosc("validate", cwd=project).stderr
    assert piped.startswith(first) and "48 |" not in piped
    forced = holosc("--color", "always", "validate", cwd=project).stderr
    assert '48 |     replicas: "2"\n' in forced


def test_version() -> None:
    assert holosc("--version").stdout.startswith("holosc 0.")
    assert holosc("version").stdout == holosc("--version").stdout


def test_profiles_from_the_option_and_the_environment(tmp_path: Path) -> None:
    (tmp_path / "holos.yaml").write_text(
        "name: prof\nservices:\n  web: {image: debian:12}\n"
        "  tools: {image: debian:12, profiles: [debug]}\n"
        "  graphs: {image: 'alpine:3.21', profiles: [monitoring, debug]}\n"
    )
    assert holosc("config", "--services", cwd=tmp_path).stdout == "web\n"
    both = holosc("--profile", "debug", "config", "--services", cwd=tmp_path).stdout
    assert both == "graphs\ntools\nweb\n"
    env = dict(os.environ, HOLOS_PROFILES="monitoring")
    by_env = subprocess.run(
        [sys.executable, "-m", "holosc", "config", "--services"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert by_env.stdout == "graphs\nweb\n", by_env.stderr
    assert holosc("config", "--profiles", cwd=tmp_path).stdout == "debug\nmonitoring\n"
    images = holosc("--profile", "debug", "config", "--images", cwd=tmp_path).stdout
    assert images == "alpine:3.21\ndebian:12\n"
    bad = holosc("--profile", "a b", "config", cwd=tmp_path)
    assert bad.returncode == 2 and "'a b' is not a profile name" in bad.stderr


@pytest.mark.parametrize(
    ("shell", "env", "expected"),
    [
        ("bash", {"COMP_WORDS": "holosc logs w", "COMP_CWORD": "2"}, "web\nweb-0\nweb-1"),
        ("bash", {"COMP_WORDS": "holosc exec a", "COMP_CWORD": "2"}, "api-0"),
        ("fish", {"_TYPER_COMPLETE_ARGS": "holosc console d"}, "db-0"),
        ("zsh", {"_TYPER_COMPLETE_ARGS": "holosc stop "}, '"db"\n"api"\n"web"'),
        ("bash", {"COMP_WORDS": "holosc ss", "COMP_CWORD": "1"}, "ssh-config"),
        ("bash", {"COMP_WORDS": "holosc ru", "COMP_CWORD": "1"}, "run"),
        ("bash", {"COMP_WORDS": "holosc stats w", "COMP_CWORD": "2"}, "web\nweb-0\nweb-1"),
        ("bash", {"COMP_WORDS": "holosc run a", "COMP_CWORD": "2"}, "api"),
        ("bash", {"COMP_WORDS": "holosc cp ./a w", "COMP_CWORD": "3"}, "web-0:\nweb-1:"),
        ("bash", {"COMP_WORDS": "holosc ssh-config a", "COMP_CWORD": "2"}, "api\napi-0"),
    ],
)
def test_completion_offers_names_from_holos_yaml(
    project: Path, shell: str, env: dict[str, str], expected: str
) -> None:
    script = Path(sys.executable).with_name("holosc")  # completion keys on the program name
    environ = dict(os.environ, _HOLOSC_COMPLETE=f"complete_{shell}", **env)
    if shell == "fish":
        environ["_TYPER_COMPLETE_FISH_ACTION"] = "get-args"
    done = subprocess.run(
        [str(script)], cwd=project, env=environ, capture_output=True, text=True, timeout=60
    )
    assert expected in done.stdout, (done.stdout, done.stderr)


@pytest.mark.parametrize(
    ("words", "expected"),
    [
        ("holosc pa", "pause"),
        ("holosc snapshot r", "restore\nrm"),
        ("holosc unpause w", "web\nweb-0\nweb-1"),
        ("holosc snapshot restore b", "before-upgrade"),
        ("holosc snapshot save x d", "db\ndb-0"),
    ],
)
def test_completion_knows_pause_and_snapshots(
    project: Path, tmp_path: Path, words: str, expected: str
) -> None:
    """Snapshot names come from the tables of the instances' disks (a real qcow2 file
    with an internal snapshot, in the state directory HOLOSC_STATE_DIR names)."""
    disk = tmp_path / "state" / "instances" / "shop" / "db-0" / "root.qcow2"
    disk.parent.mkdir(parents=True)
    qemu_img = require_tool("qemu-img")
    subprocess.run([qemu_img, "create", "-q", "-f", "qcow2", str(disk), "1M"], check=True)
    tag = "holos/db-0/before-upgrade"
    subprocess.run([qemu_img, "snapshot", "-c", tag, str(disk)], check=True)
    script = Path(sys.executable).with_name("holosc")
    environ = dict(
        os.environ,
        _HOLOSC_COMPLETE="complete_bash",
        COMP_WORDS=words,
        COMP_CWORD=str(len(words.split()) - 1),
        HOLOSC_STATE_DIR=str(tmp_path / "state"),
    )
    done = subprocess.run(
        [str(script)], cwd=project, env=environ, capture_output=True, text=True, timeout=60
    )
    assert done.stdout.strip() == expected, (done.stdout, done.stderr)


def test_quiet_silences_summaries_not_errors(project: Path) -> None:
    built = holosc("-q", "build", cwd=project)
    assert built.returncode == 0 and built.stderr == ""
    assert "written" in holosc("build", cwd=project).stderr
    (project / "holos.yaml").write_text("services: {web: {replicas: many}}\n")
    failed = holosc("-q", "validate", cwd=project)
    assert failed.returncode == 3 and "must be an integer" in failed.stderr


def test_console_logs_cannot_drive_the_terminal() -> None:
    """`logs --console` prints what a guest wrote: a title change, a screen clear, a
    carriage return that hides text and a C1 CSI all show as text; tab and LF stay."""
    hostile = "boot ok\r\n\x1b]0;owned\x07\x1b[2J\rhidden\x9b1m\tend\n"
    assert terminal_safe(hostile) == ("boot ok\n\\x1b]0;owned\\x07\\x1b[2J\\rhidden\\x9b1m\tend\n")


def test_exec_user_is_the_scope_and_login_is_login(tmp_path: Path) -> None:
    """`exec --user web-0 -- cat f` once read web-0 as the login user ("invalid instance
    name 'cat'"); --user is the scope here as everywhere, and compose's -u says what to
    use instead. No manager is asked (HOLOSC_SYSTEMCTL=false): the project is unknown."""
    env = {"HOLOSC_SYSTEMCTL": "false", "HOLOSC_UNIT_DIR": str(tmp_path),
           "HOLOSC_CONFIG_DIR": str(tmp_path), "HOLOSC_STATE_DIR": str(tmp_path),
           "HOLOSC_RUNTIME_DIR": str(tmp_path)}  # fmt: skip
    scoped = holosc("exec", "-p", "demo", "--user", "web-0", "--", "cat", "f", env=env)
    assert "invalid instance name" not in scoped.stderr, scoped.stderr
    assert "project 'demo' is not installed" in scoped.stderr, scoped.stderr
    dash_u = holosc("exec", "-p", "demo", "-u", "debian", "web-0", env=env)
    assert dash_u.returncode == 2
    assert "use --login debian (or -l) for the login user" in " ".join(dash_u.stderr.split())
    assert "-l, --login" in holosc("exec", "--help").stdout


def test_commands_by_name_say_so_outside_the_project(tmp_path: Path) -> None:
    result = holosc("logs", "db", cwd=tmp_path)
    assert result.returncode == 3
    assert f"no holos.yaml or holos.yml in {tmp_path}" in result.stderr
    assert "name the project with -p PROJECT" in result.stderr, result.stderr


@pytest.mark.parametrize("example", sorted(p.name for p in EXAMPLES.iterdir() if p.is_dir()))
def test_config_prints_every_example_in_every_format(example: str) -> None:
    """`config --format json` once exited 70 on a dockerfile: service with COPY (its bytes);
    they are base64, as YAML's !!binary holds them."""
    import base64
    import json

    import yaml

    file = str(EXAMPLES / example / "holos.yaml")
    as_json = holosc("config", "-f", file, "--format", "json")
    assert as_json.returncode == 0, as_json.stderr
    as_yaml = holosc("config", "-f", file, "--format", "yaml")
    assert as_yaml.returncode == 0, as_yaml.stderr

    def unbytes(value: object) -> object:
        if isinstance(value, dict):
            if set(value) == {"base64"}:
                return base64.b64decode(value["base64"])
            return {k: unbytes(v) for k, v in value.items()}
        if isinstance(value, list):
            return [unbytes(v) for v in value]
        return value

    assert unbytes(json.loads(as_json.stdout)) == yaml.safe_load(as_yaml.stdout)
    for flag in ("--services", "--profiles", "--images", "-q"):
        assert holosc("config", "-f", file, flag).returncode == 0
