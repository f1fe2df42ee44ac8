"""Shared test helpers: the repository layout, compiling examples, and required tools.

Tools the tests need are installed by .ci/run; a missing one fails the test with the
package to install rather than skipping it.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

import pytest

from holosc.core.compiler import Output, compile_project
from holosc.core.validate.checks import Result, build_project
from holosc.load.files import HostFiles
from holosc.load.parse import load_file, load_text

# A background job of a non-interactive shell (.ci/run's second stream, nohup, `cmd &`)
# starts with SIGINT ignored, and every program it runs inherits that: the tests that
# press Ctrl-C (pull, bake, up) would find holosc deaf to it. A user's terminal delivers
# SIGINT; so does the suite's process, whatever started it (a handled signal is reset
# to the default in the programs it runs).
if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)

REPO = Path(__file__).resolve().parents[1]
EXAMPLES = REPO / "examples"
GOLDEN = REPO / "golden"

PACKAGES = {
    "qemu-system-x86_64": "qemu-system-x86",
    "qemu-img": "qemu-utils",
    "shellcheck": "shellcheck",
    "cloud-init": "cloud-init",
    "isoinfo": "genisoimage",
    "systemd-analyze": "systemd",
    "sshd": "openssh-server",
    "ssh": "openssh-client",
}


def run_holosc(
    *args: str,
    cwd: Path | None = None,
    env: Mapping[str, str | None] | None = None,
    timeout: float = 120,
) -> subprocess.CompletedProcess[str]:
    """`python -m holosc ARGS` as people run it: the one CLI runner of the tests.

    `env` is laid over this process's environment; a None value removes the variable.
    """
    full = dict(os.environ, COLUMNS="100")
    for key, value in (env or {}).items():
        if value is None:
            full.pop(key, None)
        else:
            full[key] = value
    return subprocess.run(
        [sys.executable, "-m", "holosc", *args],
        cwd=cwd,
        env=full,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def require_tool(name: str) -> str:
    """The path of `name`, or fail naming the Debian package that provides it."""
    found = shutil.which(name) or shutil.which(name, path="/usr/sbin:/sbin")
    if not found:
        pytest.fail(f"{name} is required: apt-get install {PACKAGES.get(name, name)}")
    return found


def cloud_config_verdict(path: Path) -> str:
    """ "" when cloud-init's own schema check accepts the cloud-config at `path`, else what
    it printed. cloud-init 22.4 (Debian 12) says "Valid cloud-config", 25.1 (Debian 13)
    "Valid schema"; both exit 0 only for a valid document."""
    result = subprocess.run(
        [require_tool("cloud-init"), "schema", "-c", str(path)],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    valid = result.stdout.startswith(("Valid cloud-config", "Valid schema "))
    return "" if result.returncode == 0 and valid else f"{path}: {result.stdout}{result.stderr}"


def example_names() -> list[str]:
    return sorted(p.name for p in EXAMPLES.iterdir() if (p / "holos.yaml").is_file())


def build_example(name: str) -> Result:
    doc = load_file(EXAMPLES / name / "holos.yaml", environ={})
    return build_project(doc, HostFiles())


def compile_example(name: str) -> Output:
    return compile_project(build_example(name).project, {"holos.yaml": "golden"})


def compile_text(text: str, directory: Path | None = None, **env: str) -> Output:
    doc = load_text(text, directory=directory or EXAMPLES, environ=env)
    return compile_project(build_project(doc, HostFiles()).project)


# Fixtures shared by every test module (imported here so pytest registers them).
from tests.guest.image import guest_image  # noqa: E402,F401  (built once, cached)
from tests.guestkernel import guest_kernel, initramfs  # noqa: E402,F401
