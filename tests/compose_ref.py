"""What the tables of compose's behaviour share (tests/test_compose_*.py).

Each table row names where its expectation comes from: a test of compose-spec/compose-go
(`template_test.go TestPrecedence`), docker/compose's e2e suite, or a section of the
compose-spec (`05-services.md env_file`). The rows are our own inputs for the case that
source pins down, run through holosc as a user does: files on disk, `load_project`,
`build_project`. A row whose `ours` is set is a documented difference (docs/format.md,
"Where holosc differs from compose"): the row keeps the reference's answer in `expected`
and the test checks holosc's, which is an error or a warning, never another value.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import pytest

from holosc.core.model import Project, Service
from holosc.core.validate.checks import build_project
from holosc.errors import HolosError
from holosc.load.assemble import load_project
from holosc.load.files import HostFiles


@dataclasses.dataclass(frozen=True)
class Err:
    """An error whose message contains `text` (and starts with `where`, if given)."""

    text: str
    where: str = ""

    def found_in(self, messages: Iterable[str]) -> bool:
        return any(self.text in m and m.startswith(self.where) for m in messages)


def write(root: Path, files: Mapping[str, str | bytes]) -> Path:
    for name, content in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content)
    return root / "holos.yaml"


def build(
    root: Path, files: Mapping[str, str | bytes], environ: Mapping[str, str] | None = None
) -> tuple[Project, list[str]]:
    """The project of `files` (holos.yaml among them) and its warnings.

    :raises HolosError: as holosc reports the files.
    """
    doc = load_project(write(root, files), environ=dict(environ or {}))
    result = build_project(doc, HostFiles())
    return result.project, [str(w) for w in result.warnings]


def messages(exc: HolosError) -> list[str]:
    return [str(d) for d in exc.diagnostics] or [exc.message]


def outcome(root: Path, files: Mapping[str, str | bytes], env: Mapping[str, str]) -> Any:
    """The built project, or the error messages."""
    try:
        return build(root, files, env)[0]
    except HolosError as exc:
        return Err("\n".join(messages(exc)))


def check_errors(result: Any, expected: Err) -> None:
    assert isinstance(result, Err), f"expected an error with {expected.text!r}, got {result!r}"
    lines = result.text.splitlines()
    assert expected.found_in(lines), f"no error with {expected.text!r} in {lines}"


def guest_env(service: Service) -> dict[str, str]:
    return dict(service.environment)


def facts(service: Service) -> dict[str, Any]:
    hc = service.healthcheck
    return {
        "env": dict(service.environment),
        "mounts": [(m.source, m.target, m.read_only) for m in service.mounts],
        "secrets": [(s.source, s.target) for s in service.secrets],
        "ports": [(p.host, p.guest) for p in service.ports],
        "depends": [(d.service, d.condition and str(d.condition)) for d in service.depends_on],
        "packages": list(service.cloud_init.packages),
        "runcmd": list(service.cloud_init.runcmd),
        "image": service.image.ref if service.image.is_registry else service.image.path,
        "memory": service.vm.memory_mb,
        "vcpu": service.vm.vcpu,
        "test": list(hc.test) if hc else None,
        "user": service.cloud_init.user,
    }


def ids(rows: Iterable[Any]) -> list[str]:
    """pytest ids: the row's source and its number (sources repeat)."""
    return [f"{i:03d}-{row.source}" for i, row in enumerate(rows)]


def params(rows: list[Any]) -> Any:
    return pytest.mark.parametrize("row", rows, ids=ids(rows))
