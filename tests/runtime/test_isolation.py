"""The runtime helpers must not import the compiler, and must start without heavy imports."""

from __future__ import annotations

import subprocess
import sys

import pytest

PROBE = """
import sys
from holos_runtime import {module} as m
code = m.main({argv!r})
bad = sorted(n for n in sys.modules if n.split(".")[0] in {{"holosc", "qemu", "asyncio"}})
print(code, ",".join(bad))
"""


@pytest.mark.parametrize(
    ("module", "argv"),
    [
        ("qmp_stop", ["--help"]),
        ("qmp_stop", ["--qmp", "/nonexistent/qmp.sock"]),
        ("health", ["--help"]),
        (
            "health",
            [
                "--port",
                "1",
                "--key",
                "k",
                "--user",
                "u",
                "--known-hosts",
                "h",
                "--host-key-alias",
                "a",
                "--",
                "true",
            ],
        ),
        ("seed", ["--help"]),
        ("image", ["--help"]),
        ("switch", ["--help"]),
        ("image", ["overlay", "--disk", "/nonexistent/d", "--format", "raw", "--file", "/nx"]),
    ],
)
def test_helper_imports_neither_compiler_nor_qmp_on_fast_paths(
    module: str, argv: list[str]
) -> None:
    env = {"HOLOS_HEALTH_BYPASS": "1", "PATH": "/usr/bin:/bin"}
    proc = subprocess.run(
        [sys.executable, "-c", PROBE.format(module=module, argv=argv)],
        capture_output=True, text=True, timeout=30, env=env,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    code, _, bad = proc.stdout.strip().rpartition("\n")[2].partition(" ")
    assert code in {"0", "1", "3"}, proc.stdout
    assert bad == "", f"holos_runtime.{module} imported {bad} on a fast path"


def test_importtime_shows_no_holosc() -> None:
    for module in ("qmp_stop", "health", "seed", "image", "switch"):
        proc = subprocess.run(
            [sys.executable, "-X", "importtime", "-m", f"holos_runtime.{module}", "--help"],
            capture_output=True, text=True, timeout=30,
        )  # fmt: skip
        assert proc.returncode == 0, proc.stderr
        imported = {line.rsplit("|", 1)[-1].strip() for line in proc.stderr.splitlines()}
        assert not {m for m in imported if m.split(".")[0] == "holosc"}, imported
