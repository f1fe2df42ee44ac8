"""Same input, same bytes: across runs, timezones, working directories and hash seeds."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

import pytest

from holosc.render.units import serialize
from tests.conftest import EXAMPLES, REPO, compile_example, example_names


@pytest.mark.parametrize("name", example_names())
def test_compile_twice_is_identical(name: str) -> None:
    assert compile_example(name) == compile_example(name)


def _tree_digest(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        + oct(p.stat().st_mode & 0o777)
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def test_cli_output_independent_of_environment(tmp_path: Path) -> None:
    """`holosc build` in subprocesses with different TZ, cwd and PYTHONHASHSEED."""
    key = tmp_path / "key" / "id_ed25519"
    key.parent.mkdir()
    (key.parent / "id_ed25519.pub").write_text((REPO / "tests/data/golden_key.pub").read_text())
    digests = []
    for i, (tz, seed, cwd) in enumerate(
        [
            ("UTC", "0", REPO),
            ("Asia/Tokyo", "1", tmp_path),
            ("America/Los_Angeles", "random", Path("/")),
        ]
    ):
        out = tmp_path / f"out{i}"
        env = dict(
            os.environ,
            TZ=tz,
            PYTHONHASHSEED=seed,
            HOLOSC_SSH_KEY=str(key),
            LC_ALL="C.UTF-8" if i else "C",
        )
        for name in example_names():
            result = subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "holosc",
                    "build",
                    "-f",
                    str(EXAMPLES / name / "holos.yaml"),
                    "-o",
                    str(out / name),
                ],
                cwd=cwd,
                env=env,
                capture_output=True,
                text=True,
                timeout=120,
            )
            assert result.returncode == 0, result.stderr
        digests.append(_tree_digest(out))
    assert digests[0] == digests[1] == digests[2]
    assert len(digests[0]) > 20


def _parse_unit(text: str) -> list[tuple[str, list[tuple[str, str]]]]:
    sections: list[tuple[str, list[tuple[str, str]]]] = []
    for line in text.splitlines():
        if line.startswith("["):
            sections.append((line[1:-1], []))
        elif "=" in line and not line.startswith("#"):
            key, _, value = line.partition("=")
            sections[-1][1].append((key, value))
    return sections


def test_unit_serializer_round_trips() -> None:
    unit = [
        ("Unit", [("Description", "x"), ("After", "a.service"), ("After", "b.service")]),
        ("Service", [("ExecStart", "/bin/true")]),
        ("Install", []),
    ]
    assert _parse_unit(serialize(unit)) == [(n, list(e)) for n, e in unit]
