"""Values inside the option strings of other programs reach them as written (issue 22,
class 3), checked by the programs themselves.

A compiled launch script runs (its QEMU paused by a PATH shim) from a project, state and
runtime directory whose names hold what each parser treats specially: QEMU's `,` and `=`,
the C virtiofsd's `\\,` and `\\` (libfuse's fuse_opt). The project directory is the
issue's example, `x\\,source=DIR`, which made QEMU 7.2's virtiofsd serve DIR instead.
QEMU is then asked over QMP which files it opened (query-block, its open descriptors) and
each virtiofsd which directory it serves: the C one pivots its root into the directory it
serves (/proc/PID/root shows it); the Rust one (Debian 13) takes `--shared-dir=DIR` as one
argv value and refuses a directory that does not exist, so its command line and its
start show what it read.

vm.machine and vm.cpu_model sit where QEMU has no escape (the implied first value of
-machine, the comma-split -cpu): holosc refuses what QEMU would read differently, and
QEMU reads what holosc accepts as one name.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import socket
import stat
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path, PurePosixPath
from typing import Any

import pytest
from holos_runtime import bake
from holos_runtime.optstrings import ssh_path
from hypothesis import given, settings
from hypothesis import strategies as st

from holosc.core import layout
from holosc.core.plan import build_plan
from holosc.core.render.escape import fuse_value, fuse_value_at_run_time, qemu_cpu, qemu_name
from holosc.core.render.qemu import share_socket
from holosc.core.validate.checks import build_project
from holosc.errors import ValidationError
from holosc.load.files import HostFiles
from holosc.load.parse import load_text
from tests.conftest import compile_text, require_tool
from tests.staging import run_seed, write_output

# Named per run: QEMU 7.2's virtiofsd locks a file named after its socket, which the
# project and instance names make (tests of other checkouts may run at the same time).
PROJECT = """\
name: {name}
services:
  vm:
    image: ./disk.qcow2
    volumes: ["./ro:/ro:ro", "./rw:/rw", "data:/data"]
    secrets: [token]
    vm: {{memory_mb: 256}}
volumes:
  data: {{size: 16M}}
secrets:
  token: {{file: ./token.txt}}
"""


def _qmp(path: Path, *commands: dict[str, Any]) -> list[Any]:
    """The `return` of each command, over QEMU's QMP socket (plain JSON)."""
    replies = []
    with socket.socket(socket.AF_UNIX) as sock:
        sock.settimeout(20)
        sock.connect(str(path))
        stream = sock.makefile("rwb")
        json.loads(stream.readline())  # greeting
        for command in ({"execute": "qmp_capabilities"}, *commands):
            stream.write(json.dumps(command).encode() + b"\n")
            stream.flush()
            reply = json.loads(stream.readline())
            while "event" in reply:
                reply = json.loads(stream.readline())
            replies.append(reply.get("return", reply))
    return replies[1:]


def _processes_naming(word: str) -> dict[int, list[str]]:
    """{pid: argv} of the processes with `word` in their command line."""
    found = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                argv = (entry / "cmdline").read_bytes().decode(errors="replace").split("\0")
            except OSError:
                continue
            if any(word in arg for arg in argv):
                found[int(entry.name)] = argv
    return found


def _served(socket_name: str, directory: Path) -> str:
    """What the virtiofsd listening on `socket_name` serves: 'DIR' when it is `directory`."""
    for _ in range(400):  # the C one pivots once QEMU has connected (20 s: a loaded host)
        processes = _processes_naming(f"--socket-path={socket_name}")
        for pid, argv in processes.items():
            if f"--shared-dir={directory}" in argv:  # the Rust one: started, so it found it
                return "DIR"
            try:  # the C one: its sandboxed process has pivoted into what it serves
                marker = (Path(f"/proc/{pid}/root") / "marker").read_text()
            except OSError:
                continue
            return "DIR" if marker == str(directory) else f"another directory ({marker})"
        time.sleep(0.05)
    return f"nothing found: {processes}"


def _qemu_shim(directory: Path) -> Path:
    shim = directory / "shim"
    shim.mkdir()
    (shim / "qemu-system-x86_64").write_text(
        '#!/bin/sh\nexec /usr/bin/qemu-system-x86_64 "$@" -S\n'
    )
    (shim / "qemu-system-x86_64").chmod(0o755)
    return shim


@pytest.fixture
def short_tmp() -> Iterator[Path]:
    """A directory with a short path: the networks' Unix sockets sit below the runtime
    directory's parent, and a socket path has at most 107 bytes (pytest's are long)."""
    path = Path(tempfile.mkdtemp(prefix="opt-"))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def test_qemu_and_virtiofsd_read_hostile_directory_names_as_written(
    tmp_path: Path, short_tmp: Path
) -> None:
    img = require_tool("qemu-img")
    require_tool("qemu-system-x86_64")
    decoy = tmp_path / "decoy"
    # QEMU's `,` and `=` (and an id= it would take for its own), FUSE's `\` before `/`.
    odd = short_tmp / "a,b=c,id=x %20\\"
    project = odd / ("x\\,source=" + str(decoy))  # the example
    name = f"opts-{os.getpid()}"
    holos = odd / "state,file=y" / "holos"
    state, run_dir = holos / "instances" / name / "vm-0", odd / "run,id=z" / "vm-0"
    images, volumes = holos / "images", holos / "volumes" / name
    for directory in (decoy / "rw", decoy / "ro", state, run_dir, images, volumes):
        directory.mkdir(parents=True)
    for share in ("ro", "rw"):
        (project / share).mkdir(parents=True)
        for root in (project, decoy):
            (root / share / "marker").write_text(str(root / share))
    (project / "token.txt").write_text("s3cret\n")
    subprocess.run([img, "create", "-q", "-f", "qcow2", str(project / "disk.qcow2"), "64M"])
    subprocess.run([img, "create", "-q", "-f", "qcow2", str(volumes / "data.qcow2"), "16M"])

    text = PROJECT.format(name=name)
    output = compile_text(text, directory=project)
    plan = build_plan(build_project(load_text(text, directory=project), HostFiles()).project)
    sockets = [share_socket(plan, plan.instances[0], i) for i in range(2)]
    artifacts = tmp_path / "etc" / name
    write_output(output, tmp_path / "etc")
    (artifacts / "project").symlink_to(project)
    key = tmp_path / "ssh" / "id_ed25519"
    run_seed(artifacts / "vm-0", state, key, f"vm-0.{name}.holos", run_dir / "seed.iso")
    env = dict(
        os.environ,
        HOLOS_ACCEL="tcg",
        PATH=f"{_qemu_shim(tmp_path)}:{Path(sys.executable).parent}:{os.environ['PATH']}",
        STATE_DIRECTORY=f"{images}:{state}:{volumes}",
        RUNTIME_DIRECTORY=str(run_dir),
    )
    log = tmp_path / "launch.log"
    with log.open("w") as handle:  # a file: virtiofsd keeps its stderr open
        rc = subprocess.run(
            [str(artifacts / "vm-0" / "launch.sh")],
            env=env, stdout=handle, stderr=handle, stdin=subprocess.DEVNULL, timeout=120,
        ).returncode  # fmt: skip
    assert rc == 0, log.read_text()
    pid = int((run_dir / "qemu.pid").read_text())
    try:
        blocks, network = _qmp(
            run_dir / "qmp.sock",
            {"execute": "query-block"},
            {"execute": "human-monitor-command", "arguments": {"command-line": "info network"}},
        )
        opened = {os.readlink(fd) for fd in Path(f"/proc/{pid}/fd").iterdir()}
        shares = {d: _served(s, project / d) for s, d in zip(sockets, ("ro", "rw"), strict=True)}
    finally:
        os.kill(pid, signal.SIGKILL)
        for socket_name in sockets:  # they end with QEMU's connection, or now
            for virtiofsd in _processes_naming(f"--socket-path={socket_name}"):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(virtiofsd, signal.SIGKILL)
    files = {b["device"]: b["inserted"]["file"] for b in blocks if "inserted" in b}
    root = next(b for b in blocks if b["device"] == "root")["inserted"]["image"]
    assert files["root"] == str(state / "root.qcow2"), files
    assert root["backing-image"]["filename"] == str(project / "disk.qcow2"), root
    assert files["seed"] == str(run_dir / "seed.iso"), files
    assert files["vol-data"] == str(volumes / "data.qcow2"), files
    assert str(state / "console.log") in opened, opened  # -chardev logfile=
    # -netdev dgram: QEMU bound each socket where the script said, and sends to the
    # project's switch below the hostile runtime root (`info network`: udp=LOCAL:REMOTE).
    switch = layout.switch_sockets(run_dir.parent.parent, name)
    pairs = re.findall(r"type=dgram,udp=(\.\./vm-0/[^:]+):(.*?)\r?\n", network)
    assert len(pairs) >= 2, network
    for local, remote in pairs:
        assert stat.S_ISSOCK((run_dir / local).lstat().st_mode), local
        assert remote.startswith(f"{switch}/") and "/" not in remote[len(str(switch)) + 1 :]
    assert shares == {"ro": "DIR", "rw": "DIR"}, (shares, log.read_text())


# --- the machine type and the CPU model --------------------------------------------------

VM = "name: m\nservices:\n  vm:\n    image: debian:12\n    vm: {{{key}: {value}}}\n"


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("machine", "q35,smm=off"),  # a comma ends QEMU's type; ,, is no escape there
        ("machine", "type=pc"),  # a `=` makes the type a key
        ("machine", "help"),  # QEMU lists its machines and exits 0
        ("machine", "q35 x"),
        ("cpu_model", "max,x=a/b"),  # a feature's value cannot hold a comma: -cpu splits
        ("cpu_model", "help"),
        ("cpu_model", "max,,x"),
        ("cpu_model", "max x"),
    ],
)
def test_machine_and_cpu_values_qemu_cannot_carry_are_refused(key: str, value: str) -> None:
    with pytest.raises(ValidationError) as caught:
        compile_text(VM.format(key=key, value=json.dumps(value)))
    (diag,) = caught.value.diagnostics
    assert (diag.line, diag.col, diag.path) == (5, 12 + len(key), f"services.vm.vm.{key}")
    assert f"'{value}' is not a QEMU" in diag.message, diag


def _qemu_says(*args: str) -> str:
    qemu = require_tool("qemu-system-x86_64")
    argv = [qemu, "-S", "-nodefaults", "-display", "none", "-qmp", "stdio", *args]
    result = subprocess.run(argv, input="", capture_output=True, text=True, timeout=60)
    return result.stderr


names = st.from_regex(r"[A-Za-z0-9][A-Za-z0-9._-]{0,20}", fullmatch=True)


@settings(max_examples=8, deadline=None)
@given(names.filter(lambda n: n not in ("help",) and not n.startswith(("pc", "q35", "micro"))))
def test_qemu_reads_an_accepted_machine_type_whole(name: str) -> None:
    """Whatever holosc accepts, QEMU takes as the whole machine type (and has no such
    machine), never as a property of another."""
    said = _qemu_says("-machine", qemu_name(name) + ",accel=tcg")
    assert "unsupported machine type" in said, said


@settings(max_examples=8, deadline=None)
@given(names.filter(lambda n: n not in ("help", "host", "max", "base") and "-" not in n[:1]))
def test_qemu_reads_an_accepted_cpu_model_whole(name: str) -> None:
    said = _qemu_says("-machine", "none", "-cpu", qemu_cpu(name + ",-vmx"))
    assert f"unable to find CPU model '{name}'" in said, said


def test_real_machine_types_and_cpu_models_are_accepted() -> None:
    """What this QEMU lists is what holosc accepts (the grammar is not too narrow)."""
    qemu = require_tool("qemu-system-x86_64")
    machines = subprocess.run([qemu, "-machine", "help"], capture_output=True, text=True)
    cpus = subprocess.run([qemu, "-cpu", "help"], capture_output=True, text=True)
    listed = [line.split()[0] for line in machines.stdout.splitlines()[1:] if line.strip()]
    # QEMU 7.2 writes "x86 NAME  (description)" under "Available CPUs:"; later ones drop
    # the "x86 ". The list ends at the first blank line.
    block = cpus.stdout.split("Available CPUs:", 1)[1].lstrip("\n").split("\n\n", 1)[0]
    models = [line.split()[1 if line.startswith("x86 ") else 0] for line in block.splitlines()]
    assert len(listed) > 3 and len(models) > 10, (machines.stdout, cpus.stdout)
    for name in listed:
        qemu_name(name)
    for model in models:
        qemu_cpu(model)


# --- FUSE -o values, bash and Python alike -------------------------------------------------

hostile = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\0"))


@settings(max_examples=40, deadline=None)
@given(hostile)
def test_fuse_values_escaped_at_run_time_match_python(value: str) -> None:
    script = f'dir=$1\n{fuse_value_at_run_time("dir")}\nprintf %s "$dir_o"'
    out = subprocess.run(["bash", "-c", script, "bash", value], capture_output=True, timeout=30)
    assert out.stdout.decode() == fuse_value(value)


def _fuse_split(text: str) -> list[str]:
    """libfuse's process_real_option_group, transcribed: `\\ooo` octal and `\\x` escapes,
    options end at an unescaped comma."""
    options, current, i = [], "", 0
    while i < len(text):
        ch = text[i]
        if ch == "\\" and i + 1 < len(text):
            rest = text[i + 1 : i + 4]
            if len(rest) == 3 and rest[0] in "0123" and all(c in "01234567" for c in rest[1:]):
                current += chr(int(rest, 8))
                i += 4
                continue
            current += text[i + 1]
            i += 2
            continue
        if ch == ",":
            options.append(current)
            current = ""
        else:
            current += ch
        i += 1
    return [*options, current]


@settings(max_examples=200, deadline=None)
@given(hostile)
def test_fuse_values_are_one_option_to_libfuse(value: str) -> None:
    assert _fuse_split("source=" + fuse_value(value) + ",cache=auto") == [
        "source=" + value,
        "cache=auto",
    ]


# --- ssh -o paths ----------------------------------------------------------------------------


@settings(max_examples=40, deadline=None)
@given(hostile.map(lambda t: "/" + t.replace("\n", " ").replace("\r", " ")))
def test_ssh_reads_the_known_hosts_path_as_written(path: str) -> None:
    """`ssh -G` prints the configuration ssh parsed: the UserKnownHostsFile it would read."""
    ssh = require_tool("ssh")
    out = subprocess.run(
        [ssh, "-G", "-o", f"UserKnownHostsFile={ssh_path(path)}", "host"],
        capture_output=True, timeout=30, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    lines = out.stdout.decode().split("\n")
    assert f"userknownhostsfile {path}" in lines, (out.stdout, out.stderr)


@pytest.mark.parametrize("model", ["host", "host,-vmx", "host,+avx2,-vmx"])
def test_host_with_features_runs_as_max_with_them_under_tcg(
    model: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`-cpu host` needs KVM: launch.sh and the builder run `max` under TCG, with the
    features the service switched, and QEMU (TCG) accepts that. Before, only a plain
    `host` was swapped and `host,-vmx` reached TCG, which refuses it."""
    text = f"name: c\nservices:\n  web:\n    image: ./d.qcow2\n    vm: {{cpu_model: '{model}'}}\n"
    script = compile_text(text).files[PurePosixPath("c/web-0/launch.sh")].data.decode()
    cpu_lines = script[script.index("\ncpu=") + 1 :].split("\n\n", 1)[0]
    out = subprocess.run(
        ["bash", "-c", f'accel=tcg\n{cpu_lines}\nprintf %s "$cpu"'],
        capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    expected = "max" + model.removeprefix("host")
    assert out.stdout == expected, (cpu_lines, out)
    monkeypatch.setenv("HOLOS_ACCEL", "tcg")
    assert bake.cpu_model(model) == expected
    qemu = require_tool("qemu-system-x86_64")
    argv = [qemu, "-S", "-nodefaults", "-display", "none", "-machine", "q35,accel=tcg"]
    quit_ = '{"execute": "qmp_capabilities"}\n{"execute": "quit"}\n'
    ran = subprocess.run(
        [*argv, "-cpu", qemu_cpu(expected), "-qmp", "stdio"],
        input=quit_, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert ran.returncode == 0 and '"return"' in ran.stdout, ran.stderr
