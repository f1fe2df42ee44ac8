"""Inputs that used to hang, exhaust memory or end in an internal error (exit 70) are
clear `file:line:col` errors, fast (subprocess timeouts turn a hang into a failure)."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from pathlib import Path

from holosc.core import compiler
from holosc.core.compiler import compile_project
from holosc.core.validate.checks import build_project
from holosc.load.files import HostFiles
from holosc.load.parse import load_text
from tests.conftest import require_tool
from tests.staging import verify_root

REPO = Path(__file__).resolve().parents[1]


def holosc(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "holosc", *args],
        capture_output=True, text=True, timeout=60, cwd=cwd, stdin=subprocess.DEVNULL,
        env=os.environ | {"PYTHONPATH": str(REPO)},
    )  # fmt: skip


def project(tmp_path: Path, text: str) -> Path:
    (tmp_path / "holos.yaml").write_text(text)
    return tmp_path


def test_a_name_with_a_final_newline_is_invalid_not_internal(tmp_path: Path) -> None:
    project(tmp_path, 'name: "demo\\n"\nservices:\n  web: {image: debian:12}\n')
    result = holosc("build", "-o", "out", cwd=tmp_path)
    assert result.returncode == 3, result.stderr
    assert result.stderr.startswith("holos.yaml:1:7: error: name: 'demo\\n' is not a valid name")
    assert not (tmp_path / "out").exists()


def _fifo_writer_unblocks(fifo: Path) -> threading.Thread:
    """Opens the FIFO for writing after the test, so a reader stuck on it would end."""

    def unblock() -> None:
        try:
            fd = os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
            os.close(fd)
        except OSError:
            pass

    return threading.Thread(target=unblock)


def test_a_fifo_as_copy_source_is_an_error(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "key.pem")
    (tmp_path / "Dockerfile").write_text("FROM debian:12\nCOPY key.pem /etc/key.pem\n")
    project(tmp_path, "name: fifo\nservices:\n  web: {dockerfile: Dockerfile}\n")
    result = holosc("validate", cwd=tmp_path)
    assert result.returncode == 3, result.stderr
    assert "source 'key.pem' is not a regular file" in result.stderr, result.stderr
    assert result.stderr.startswith("holos.yaml:3:21: error: services.web.dockerfile:")


def test_a_fifo_as_dockerfile_holos_yaml_or_env_is_an_error(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "Dockerfile")
    project(tmp_path, "name: fifo\nservices:\n  web: {dockerfile: Dockerfile}\n")
    result = holosc("validate", cwd=tmp_path)
    assert result.returncode == 3 and "not a regular file" in result.stderr, result.stderr
    os.mkfifo(tmp_path / ".env")
    result = holosc("validate", cwd=tmp_path)
    assert result.returncode == 3, result.stderr
    assert result.stderr.startswith(".env: error: cannot read file: .env is not a regular file")
    other = tmp_path / "other"
    other.mkdir()
    os.mkfifo(other / "holos.yaml")
    result = holosc("validate", "-f", "holos.yaml", cwd=other)
    assert result.returncode == 3 and "not a regular file" in result.stderr, result.stderr


def test_import_refuses_a_fifo_and_dev_zero(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "vm.xml")
    result = holosc("import", "--xml", "vm.xml", cwd=tmp_path)
    assert result.returncode == 3 and "not a regular file" in result.stderr, result.stderr
    result = holosc("import", "--xml", "/dev/zero", cwd=tmp_path)
    assert result.returncode == 3 and "zero is not a regular file" in result.stderr, result.stderr


def test_env_file_has_a_size_bound(tmp_path: Path) -> None:
    project(tmp_path, "name: env\nservices:\n  web: {image: debian:12}\n")
    (tmp_path / ".env").write_text("A=" + "x" * (2 * 1024 * 1024) + "\n")
    result = holosc("validate", cwd=tmp_path)
    assert result.returncode == 3, result.stderr
    assert "the limit is 1048576" in result.stderr


def test_interpolation_cannot_amplify_a_variable(tmp_path: Path) -> None:
    """A 512 KiB variable named 20 times would be 10 MiB of holos.yaml."""
    refs = ", ".join(['"${BIG}"'] * 20)
    text = f"name: amp\nservices:\n  web:\n    image: debian:12\n    x-refs: [{refs}]\n"
    try:
        build_project(load_text(text, environ={"BIG": "x" * 512 * 1024}), HostFiles())
    except Exception as exc:
        errors = [str(d) for d in getattr(exc, "diagnostics", ())]
    else:
        errors = []
    assert errors and errors[0].startswith("holos.yaml:5:")
    assert "interpolated values add up to more than 4194304 characters" in errors[0]


def test_interpolation_nesting_is_bounded() -> None:
    deep = "${A:-" * 40 + "x" + "}" * 40
    text = f'name: deep\nservices:\n  web:\n    image: debian:12\n    x-deep: "{deep}"\n'
    try:
        load_text(text, environ={})
    except Exception as exc:
        errors = [str(d) for d in getattr(exc, "diagnostics", ())]
    assert errors == [
        "holos.yaml:5:13: error: services.web.x-deep: interpolation nests deeper than 16 levels"
    ]


def test_output_is_bounded_in_bytes(tmp_path: Path) -> None:
    """1 MiB of cloud-init content and 20 replicas: 41 MB of seeds before the bound."""
    content = "x" * (1024 * 1024 - 300)
    text = (
        "name: amp\nservices:\n  web:\n    image: debian:12\n    replicas: 20\n"
        f"    cloud_init:\n      write_files:\n        - path: /a\n          content: {content}\n"
    )
    (tmp_path / "holos.yaml").write_text(text)
    result = holosc("build", "-o", "out", cwd=tmp_path)
    assert result.returncode == 3, result.stderr
    assert result.stderr.startswith(
        "holos.yaml:3:3: error: services.web: the project would write 41.6 MiB "
        "(compiled files and the seeds built from them at start), over the limit of 32 MiB"
    ), result.stderr
    assert not (tmp_path / "out").exists()
    # The estimate the bound uses is no smaller than what is written.
    small = text.replace("replicas: 20", "replicas: 2")
    built = build_project(load_text(small), HostFiles()).project
    total = sum(len(f.data) for f in compile_project(built).files.values())
    assert 2 * 1024 * 1024 < total <= sum(compiler.output_bytes(built).values())


def test_longest_durations_compile_to_units_systemd_accepts(tmp_path: Path) -> None:
    tool = require_tool("systemd-analyze")
    text = (
        "name: long\nservices:\n  web:\n    image: debian:12\n    replicas: 3\n"
        "    stop_grace_period: 365d\n"
        "    healthcheck:\n      test: [CMD, 'true']\n      interval: 365d\n"
        "      timeout: 31536000\n      start_period: 8760h\n"
        "      retries: 1000000000000000000000\n"
    )
    output = compile_project(build_project(load_text(text), HostFiles()).project)
    units = verify_root(output, tmp_path / "root", "long")
    gate = (units / "holos-long-web-healthy.service").read_text()
    assert "TimeoutStartSec=infinity" in gate
    for unit, arg in (
        ("holos-long-web@.service", "holos-long-web@0.service"),
        ("holos-long-web-healthy.service", ""),
    ):
        target = f"{units / unit}" + (f":{arg}" if arg else "")
        result = subprocess.run(
            [tool, "verify", "--recursive-errors=no", f"--root={tmp_path / 'root'}", target],
            capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        assert (result.returncode, result.stdout + result.stderr) == (0, ""), unit


def test_includes_cannot_amplify(tmp_path: Path) -> None:
    """Eight levels of eight includes each were 8^8 file loads (a hang): includes stop
    at a bound, with one error."""
    for level in range(8):
        nxt = f"l{level + 1}.yaml"
        (tmp_path / f"l{level}.yaml").write_text(
            "include:\n" + f"  - {nxt}\n" * 8 if level < 7 else "services: {}\n"
        )
    project(tmp_path, "name: bomb\ninclude: [l0.yaml]\nservices: {}\n")
    result = holosc("validate", cwd=tmp_path)
    assert result.returncode == 3, result.stderr
    assert "files included" in result.stderr, result.stderr
    assert result.stderr.count("error:") == 1, result.stderr


def test_extends_parses_a_file_once(tmp_path: Path) -> None:
    """200 services extending one 2000-service file parsed it 200 times (about 0.7 s each
    here, so over the timeout); it is parsed once."""
    base = "services:\n" + "".join(f"  s{i}:\n    image: debian:12\n" for i in range(2000))
    (tmp_path / "base.yaml").write_text(base)
    services = "".join(
        f"  x{i}:\n    extends: {{file: base.yaml, service: s{i}}}\n" for i in range(200)
    )
    project(tmp_path, "name: ext\nservices:\n" + services)
    result = holosc("validate", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
